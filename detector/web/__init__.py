"""The interviewer web app (``detector serve``): upload, live progress, reports, history.

Build it with :func:`detector.web.app.create_app`; the CLI wires it to uvicorn.
"""
