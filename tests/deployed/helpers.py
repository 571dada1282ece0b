"""What a browser and a mailbox do, for the deployed tier: fill in forms, read mail files."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Callable
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path

import httpx

LINK_RE = re.compile(r"https?://[^\s<>\"']+")
MAIL_SEPARATOR = "\n" + "-" * 79 + "\n"  # what Django's file-based backend writes after each message


class _PlainHTTPJar(CookieJar):
    """Keep Secure cookies for plain HTTP to 127.0.0.1, as a browser does for localhost.

    Production settings mark every cookie Secure; the tier talks to gunicorn without TLS (what a
    TLS-terminating proxy in front of it does), so the client must send them back anyway. httpx
    copies the jar into a default one for each request: the flag is dropped on arrival.
    """

    def make_cookies(self, response, request):
        cookies = super().make_cookies(response, request)
        for cookie in cookies:
            cookie.secure = False
        return cookies


def new_client(base_url: str, on_response: Callable[[httpx.Response], None]) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        follow_redirects=True,
        timeout=30,
        cookies=_PlainHTTPJar(),
        headers={"User-Agent": "deployed-tier/1"},
        event_hooks={"response": [on_response]},
    )


class _FormParser(HTMLParser):
    """The forms of a page, each as (action, {name: value}) with what a browser would submit."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._fields: dict[str, str] | None = None
        self._select: str | None = None
        self._select_first: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._fields = {}
            self.forms.append((a.get("action", ""), self._fields))
        if self._fields is None or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self._fields[name] = a.get("value", "on")
            elif kind not in {"submit", "button", "image", "reset", "file"}:
                self._fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select, self._select_first = name, None
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
                self._fields.setdefault(self._select, value)
            if "selected" in a:
                self._fields[self._select] = value
        elif tag == "textarea" and name:
            self._textarea = name
            self._fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._fields is not None and self._textarea:
            self._fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._fields = None


def form(page: httpx.Response, *, having: str) -> tuple[str, dict[str, str]]:
    """The form of ``page`` that has a field named ``having``: its absolute action URL and the
    values a browser would send (hidden fields, including the CSRF token, selected options)."""
    parser = _FormParser()
    parser.feed(page.text)
    for action, fields in parser.forms:
        if having in fields:
            return str(page.url.join(action)) if action else str(page.url), dict(fields)
    raise AssertionError(f"{page.url}: no form with a field {having!r} ({page.status_code})")


def submit(client: httpx.Client, page: httpx.Response, *, having: str, **values: str) -> httpx.Response:
    """Fill in the form of ``page`` that has the field ``having`` and post it, as a browser would."""
    action, fields = form(page, having=having)
    fields.update(values)
    return client.post(action, data=fields, headers={"Referer": str(page.url)})


def read_mails(mail_dir: Path) -> list[email.message.EmailMessage]:
    """Every complete message the file-based backend has written so far, oldest first."""
    messages = []
    for path in sorted(mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime_ns):
        chunks = path.read_text(encoding="utf-8", errors="replace").split(MAIL_SEPARATOR)
        for chunk in chunks[:-1]:  # the last chunk is being written, or empty
            messages.append(email.message_from_string(chunk.lstrip("\n"), policy=email.policy.default))
    return messages


def body(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part is not None else ""


def wait_for_link(mail_dir: Path, *, to: str, containing: str, seen: set[str], timeout: float = 20,
                  still_running: Callable[[], None] = lambda: None) -> str:
    """The first link containing ``containing`` in a new mail to ``to`` (the mail worker writes it)."""
    deadline = time.monotonic() + timeout
    while True:
        still_running()
        for message in read_mails(mail_dir):
            if to not in str(message.get("To", "")):
                continue
            for link in LINK_RE.findall(body(message)):
                link = link.rstrip(".,;)")
                if containing in link and link not in seen:
                    seen.add(link)
                    return link
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {to} with a link containing {containing!r} within {timeout}s")
        time.sleep(0.2)
