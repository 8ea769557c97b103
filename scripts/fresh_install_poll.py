"""A full-text poll on loopback with whatever `chipwatch` this Python has installed.

    python -m venv /tmp/v && /tmp/v/bin/pip install .   # plain, no constraints file
    /tmp/v/bin/python scripts/fresh_install_poll.py

`.ci/run` does exactly that: it proves that the dependencies pyproject.toml declares are
enough for a user's `pip install` (trafilatura's HTML cleaner was once missing). A feed
and its article pages are served on 127.0.0.1; the poll must exit 0 and store each
article with the text of its page, not the feed's one-line summary. Exit 0 or 1.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAGE_SENTENCE = "Only the article page carries this sentence about wafer fab export licences"
PARAGRAPH = (
    "The ministry published the revised control list on Monday, and exporters of "
    "lithography equipment now need an individual licence for each shipment. "
)


def page(number: int) -> bytes:
    body = "".join(f"<p>{PARAGRAPH * 3} ({number}.{i})</p>" for i in range(4))
    return (
        f"<html><head><title>Article {number}</title></head><body><article>"
        f"<h1>Article {number}</h1><p>{PAGE_SENTENCE} ({number}).</p>{body}"
        "</article></body></html>"
    ).encode()


def feed(base: str) -> bytes:
    items = "".join(
        f"<item><title>Article {n} on export controls</title>"
        f"<link>{base}/articles/{n}</link><guid isPermaLink='false'>fresh-{n}</guid>"
        f"<pubDate>Mon, 03 Mar 2025 09:00:00 GMT</pubDate>"
        f"<description>Short summary {n}.</description></item>"
        for n in (1, 2)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Fresh install check</title><link>{base}/</link>{items}</channel></rss>"
    ).encode()


def serve() -> tuple[ThreadingHTTPServer, str]:
    documents: dict[str, tuple[bytes, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
            found = documents.get(self.path)
            if found is None:
                self.send_error(404)
                return
            body, kind = found
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    documents["/feed.xml"] = (feed(base), "application/rss+xml")
    for n in (1, 2):
        documents[f"/articles/{n}"] = (page(n), "text/html; charset=utf-8")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base


def main() -> int:
    server, base = serve()
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="chipwatch-fresh-") as folder:
        config = Path(folder) / "chipwatch.toml"
        config.write_text(
            f'data_dir = "{folder}/data"\n'
            f'topics = "{repo / "config" / "topics.toml"}"\n'
            f'corpus_dir = "{repo / "config" / "corpus"}"\n'
            "[fetch]\nallow_private_networks = true\n"
            f'[[sources]]\nurl = "{base}/feed.xml"\narticle_text = "fetch"\n',
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "chipwatch", "--config", str(config)]
        result = subprocess.run(
            [*command, "poll", "--no-classify"], capture_output=True, text=True, timeout=600
        )
        server.shutdown()
        print(result.stdout + result.stderr, end="")
        if result.returncode != 0:
            print(f"FAIL: poll exited {result.returncode}")
            return 1
        with sqlite3.connect(Path(folder) / "data" / "chipwatch.sqlite3") as db:
            texts = [text for (text,) in db.execute("SELECT text FROM articles")]
    full = [t for t in texts if PAGE_SENTENCE in t]
    if len(texts) != 2 or len(full) != 2:
        print(f"FAIL: {len(texts)} articles stored, {len(full)} with their page's text")
        return 1
    print(f"fresh install: full-text poll OK ({len(full)} articles with their page's text)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
