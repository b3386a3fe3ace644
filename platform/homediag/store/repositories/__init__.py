"""The write side's SQL, one module per aggregate: uploads, devices, observations, patients and their aliases.

Every function takes the caller's session: the service above opens the one unit of work
(``rt.sessions.begin()``) and nothing here opens, commits or closes a session. Statements that run
on every upload are built once per dialect so that SQLAlchemy compiles them once.
"""
