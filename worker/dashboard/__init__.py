"""`batchline dashboard`: a web view of the queue, batches, requests and money.

Starlette + Jinja2 served by uvicorn; templates and the one small script are
package data, so nothing is fetched from a CDN and it works offline.
"""
