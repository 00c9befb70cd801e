"""A real OpenID provider for the sign-in tests: django-oauth-toolkit in OIDC mode (RS256),
its own Django project and SQLite file, run by `serve.py` as a separate process."""
