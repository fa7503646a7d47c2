"""The Spark side: the session (Delta configured), sources, and one module per step op."""
