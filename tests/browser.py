"""Headless Debian chromium for layout checks of rendered HTML.

    measure(html, width)  -> {"scrollWidth": ..., "innerWidth": ..., "overflowing": [...]}
    screenshot(html, width, png_path)

The page gets a small script appended that writes its measurements into the DOM;
`--dump-dom` returns the DOM after load, and we read them back. Tests skip when
/usr/bin/chromium is missing (CI installs the `chromium` package).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path

from chipwatch.demo.run import CHROMIUM_FLAGS

CHROMIUM = Path("/usr/bin/chromium")
SKIP_REASON = "Debian chromium not installed (/usr/bin/chromium): apt-get install -y chromium"


# Headless chromium will not make a window narrower than 500 px, so the page is loaded
# into an iframe of the wanted width (srcdoc keeps it same-origin, hence measurable).
_FRAME = """<!DOCTYPE html>
<html><head><meta charset="utf-8"></head>
<body style="margin:0;background:#888;">
<iframe id="cw-frame" style="border:0;display:block;width:{width}px;height:{height}px;"
  srcdoc="{srcdoc}"></iframe>
<script>
document.getElementById("cw-frame").addEventListener("load", function () {{
  var win = this.contentWindow, root = this.contentDocument.documentElement;
  var limit = win.innerWidth, wide = [];
  var all = this.contentDocument.body.getElementsByTagName("*");
  for (var i = 0; i < all.length && wide.length < 10; i++) {{
    var r = all[i].getBoundingClientRect();
    if (r.right > limit + 1) wide.push(all[i].tagName + ":" + Math.round(r.right));
  }}
  var out = document.createElement("pre");
  out.id = "cw-measure";
  out.textContent = JSON.stringify({{scrollWidth: root.scrollWidth, innerWidth: limit,
                                     overflowing: wide}});
  document.body.appendChild(out);
}});
</script>
</body></html>
"""


def framed(html: str, width: int, height: int) -> str:
    return _FRAME.format(width=width, height=height, srcdoc=escape(html, quote=True))


def available() -> bool:
    return CHROMIUM.exists()


def _run(args: list[str], profile: str, timeout: float = 60) -> str:
    command = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def measure(html: str, width: int, height: int = 2000) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="cw-chromium-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(framed(html, width, height), encoding="utf-8")
        window = f"--window-size={max(width, 500)},{height}"
        dom = _run([window, "--dump-dom", page.as_uri()], str(Path(tmp) / "profile"))
    match = re.search(r'<pre id="cw-measure">(.*?)</pre>', dom, re.S)
    if not match:
        raise RuntimeError("measurement missing from the dumped DOM")
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(html: str, width: int, png: Path, height: int = 2000, dark: bool = False) -> Path:
    with tempfile.TemporaryDirectory(prefix="cw-chromium-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(framed(html, width, height), encoding="utf-8")
        extra = ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"] if dark else []
        _run(
            [
                *extra,
                f"--window-size={max(width, 500)},{height}",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            str(Path(tmp) / "profile"),
        )
    if not png.exists():
        shutil.rmtree(png, ignore_errors=True)
        raise RuntimeError("chromium wrote no screenshot")
    return png


_TEXT_PROBE = """<script>
window.addEventListener("load", function () {
  var out = document.createElement("pre");
  out.id = "cw-visible-text";
  out.textContent = JSON.stringify(document.body.innerText);
  document.documentElement.appendChild(out);
});
</script>"""


def visible_text(html: str, width: int, height: int = 2000) -> str:
    """The page's rendered text (`innerText`: what a reader sees, hidden parts left out)."""
    with tempfile.TemporaryDirectory(prefix="cw-chromium-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html.replace("</html>", _TEXT_PROBE + "</html>"), encoding="utf-8")
        window = f"--window-size={max(width, 500)},{height}"
        dom = _run([window, "--dump-dom", page.as_uri()], str(Path(tmp) / "profile"))
    match = re.search(r'<pre id="cw-visible-text">(.*?)</pre>', dom, re.S)
    if not match:
        raise RuntimeError("visible text missing from the dumped DOM")
    raw = match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return str(json.loads(raw.replace("&amp;", "&")))
