"""Where code comes from: repositories and the files in them.

Owns: `repositories.py` (`parse_repository_info`, per-host line links, the commit a local tree is at),
`files.py` (which files of a repository are indexed and why each other one is skipped), `languages.py`
(the one extension → language table). Pure: no Ray, no Qdrant, no models.
"""
