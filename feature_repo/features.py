"""Feast definitions of this project: built by featurekit from the `features:` blocks of jobs/*.yaml.

Nothing is listed here by hand; add or change a job's `features:` block and run `feast apply`
(or `featurekit feast apply --env ENV`).
"""

from featurekit.feast.repo import definitions

globals().update(definitions(__file__))
