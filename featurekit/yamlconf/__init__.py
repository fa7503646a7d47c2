"""The neutral layer under the job spec and the conf: what reading a user's YAML needs.

Position-aware loading (every key's ``file:line:col``), ``${name}`` variables, close-match
suggestions (``— did you mean 'merge'?``), pydantic's errors worded for people, and the
loosely-written value types. It imports nothing of featurekit but :mod:`featurekit.errors`, so
:mod:`featurekit.spec` (job files) and :mod:`featurekit.config` (``conf/``) both rest on it
without resting on each other, and the web faces word a JSON body's problems with the same
mapper.

Named for what it serves, YAML configuration (job specs and conf alike), rather than after any
one of its users.
"""
