"""A user-agent string as a person reads it: "Safari 17 on macOS", "Chrome 131 on Android".

A few ordered rules cover the browsers and systems that matter to a console (the order is the
point: Edge and Opera also say Chrome, Chrome also says Safari). Anything else reads "Unknown
browser"; the raw string stays available as the title.
"""

from __future__ import annotations

import re
from functools import lru_cache

BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"(?:OPR|Opera)/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[\d.]* (?:Mobile/\S+ )?Safari/")),
    ("curl", re.compile(r"^curl/(\d+)")),
)
SYSTEMS = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux|X11")),
)


@lru_cache(maxsize=512)
def describe(user_agent: str) -> str:
    if not user_agent:
        return "Unknown device"
    browser = next((f"{name} {m.group(1)}" for name, rx in BROWSERS if (m := rx.search(user_agent))),
                   "Unknown browser")
    system = next((name for name, rx in SYSTEMS if rx.search(user_agent)), "")
    return f"{browser} on {system}" if system else browser
