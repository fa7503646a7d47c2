"""pandera contracts for the demo jobs' outputs (pyspark API), used by `validate.schema_model`."""

import pyspark.sql.types as T
from pandera.pyspark import DataFrameModel, Field


class DriverProfile(DataFrameModel):
    """The latest profile of a driver: every field the Feast view serves is checked per row."""

    driver_id: T.LongType() = Field(nullable=False, gt=0)
    name: T.StringType() = Field(nullable=False, str_length={"min_value": 1, "max_value": 80})
    city: T.StringType() = Field(nullable=True)
    vehicle_type: T.StringType() = Field(isin=["sedan", "suv", "van", "bike"])
    rating: T.DoubleType() = Field(nullable=True, in_range={"min_value": 1.0, "max_value": 5.0})
    is_active: T.BooleanType() = Field(nullable=True)
    profile_updated_at: T.TimestampType() = Field(nullable=False)
