"""HTTP intake: `batchline serve`, for producers that do not run batchline's Python.

`app.create_app(settings)` builds the ASGI app; `auth` reads the tokens and
`openapi` describes the endpoints. This package's own import is light, so
settings can check tokens without loading Starlette.
"""
