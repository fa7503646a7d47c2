"""SQL the spec check must let through (Spark accepts it) and SQL it must refuse, with the reason.

Shared by the unit test (sqlglot, no JVM) and the integration test that asks Spark's own parser
about the same texts, so that "Spark accepts it" is checked, not assumed.
"""

from __future__ import annotations

# (SQL, is a whole query): Spark's parser accepts each.
SPARK_ACCEPTS: list[tuple[str, bool]] = [
    ("`weird name` = 1 AND `a``b` IS NOT NULL", False),
    ("city IN ('north', 'south') AND id NOT IN (1, 2)", False),
    ("CASE WHEN fare > 10 THEN 'high' WHEN fare > 0 THEN 'low' ELSE NULL END", False),
    ("CASE payment_type WHEN 'cash' THEN 1 END", False),
    ("row_number() OVER (PARTITION BY driver_id ORDER BY event_ts DESC)", False),
    ("sum(fare) OVER (PARTITION BY driver_id ORDER BY event_ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)", False),
    ("transform(xs, x -> x + 1)", False),
    ("aggregate(xs, 0, (acc, x) -> acc + x)", False),
    ("filter(xs, x -> x IS NOT NULL)", False),
    ("event_ts + INTERVAL 1 DAY", False),
    ("event_ts - INTERVAL '2' HOUR", False),
    ("INTERVAL 1 HOUR 30 MINUTES", False),
    ("fare::int > 1", False),
    ("CAST(fare AS DECIMAL(10, 2))", False),
    ("payload:driver.name", False),        # a VARIANT path: beyond sqlglot, let through
    ("flags >>> 1", False),                # unsigned shift: beyond sqlglot, let through
    ("a <=> b", False),
    ("name RLIKE '^[A-Z]' AND note LIKE 'it\\'s%'", False),
    ("m['key'] = 1 AND arr[0] > 2 AND s.field = 'x'", False),
    ("count(*) FILTER (WHERE fare > 0)", False),
    ("timestamp'2026-01-01 00:00:00' < event_ts", False),
    ("fare > 0 AND", False),               # Spark reads the last word as an alias of the condition
    ("case > 1", False),                   # a keyword used as a column name
    ("SELECT * FROM input", True),
    ("WITH t AS (SELECT * FROM input) SELECT driver_id, count(*) AS n FROM t GROUP BY driver_id", True),
    ("FROM input SELECT driver_id", True),
    ("SELECT * FROM input LATERAL VIEW explode(xs) t AS x", True),
    ("SELECT driver_id, sum(fare) OVER w AS s FROM input WINDOW w AS (PARTITION BY driver_id ORDER BY event_ts)", True),
    ("SELECT /*+ BROADCAST(c) */ p.id, c.country FROM input p JOIN cities c ON p.city = c.city", True),
    ("SELECT a FROM input GROUP BY ALL", True),
]

# (SQL, is a whole query, the reason given): Spark's parser refuses each.
SPARK_REFUSES: list[tuple[str, bool, str]] = [
    ("fare >", False, "SQL syntax error: incomplete: expected more after '>' (column 6 of the SQL)"),
    ("upper(city", False, "SQL syntax error: a '(' is not closed: expected ')' (or a comma) after 'city' "
                          "(column 7 of the SQL)"),
    ("fare > 0)", False, "SQL syntax error: unexpected ')' (column 9 of the SQL)"),
    ("city = 'north", False, "SQL syntax error: a string is not closed (column 8 of the SQL)"),
    ("`city = 1", False, "SQL syntax error: a quoted name (`) is not closed (column 1 of the SQL)"),
    ("fare /* why", False, "SQL syntax error: a /* comment is not closed (column 6 of the SQL)"),
    ("fare = = 1", False, "SQL syntax error: incomplete: expected more after '=' (column 8 of the SQL)"),
    ("fare > 1 ORDER BY id", False, "SQL syntax error: unexpected 'ORDER BY' (column 10 of the SQL)"),
    ("CAST(fare AS )", False, "SQL syntax error: expected TYPE after CAST (at ')') (column 14 of the SQL)"),
    ("CASE WHEN fare > 0 THEN 1", False, "SQL syntax error: expected END after CASE (at '1') (column 25 of the SQL)"),
    ("SELECT id FROM input WHER id > 1", True, "SQL syntax error: unexpected 'id' (column 27 of the SQL)"),
    ("SELECT id\nFROM input\nGROUP id", True, "SQL syntax error: unexpected 'id' (line 3, column 7 of the SQL)"),
]
