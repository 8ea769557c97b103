"""The review site (`chipwatch serve`): read, correct and steer the watch in a browser.

app.py builds the Starlette application; each page lives in its own module; the queries
are in chipwatch.store (users, review, search). See docs/review.md.
"""
