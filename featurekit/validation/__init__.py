"""The validation gate: row-level checks in one Spark pass, quarantine, schema checks by pandera."""
