"""Take the README's screenshots from a running demo (``tools/demo``) with headless Chromium.

    tools/demo &                      # wait for "Odoo on http://127.0.0.1:8069"
    python3 tools/screenshots.py      # writes docs/*.png

Signs in as the demo admin, then captures the Emails tab, the first conversation with an
inline image, a deal's Emails page and its composer, through Chromium's DevTools protocol
(``websocket-client``, as Odoo's own browser tests).
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

ROOT = Path(__file__).resolve().parent.parent


class Browser:
    def __init__(self, port=9333, width=1400, height=900):
        self.profile = tempfile.mkdtemp(prefix="gs-shots-")
        self.proc = subprocess.Popen(
            [
                "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "--lang=en-US",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                    tabs = json.load(r)
                break
            except OSError:
                time.sleep(0.2)
        page = next(t for t in tabs if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.ids = iter(range(1, 10**9))
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression):
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        return result.get("result", {}).get("value")

    def goto(self, url):
        self.call("Page.navigate", url=url)
        time.sleep(1)

    def wait_for(self, selector, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(f"!!document.querySelector({json.dumps(selector)})"):
                time.sleep(1.0)  # let images and the rest of the view settle
                return
            time.sleep(0.25)
        raise TimeoutError(selector)

    def shot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        print(f"wrote {path}")

    def close(self):
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8069")
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    browser = Browser()
    try:
        browser.goto(f"{args.url}/web/login")
        browser.wait_for("input[name=login]")
        browser.js(
            f"document.querySelector('input[name=login]').value = {json.dumps(args.login)};"
            f"document.querySelector('input[name=password]').value = {json.dumps(args.password)};"
            "document.querySelector('form.oe_login_form').submit();"
        )
        time.sleep(2)
        browser.goto(f"{args.url}/odoo/action-crm_gmail_sync.crm_gmail_conversation_action")
        browser.wait_for(".o_list_view .o_data_row")
        browser.shot(out / "emails-tab.png")
        # the conversation with the inline image
        browser.js(
            "[...document.querySelectorAll('.o_list_view .o_data_row')]"
            ".find(r => r.textContent.includes('Demo next Tuesday'))"
            "?.querySelector('td[name=subject]').click()"
        )
        browser.wait_for(".o_form_view .o_gmail_card img[src^='/web/image/']")
        browser.js(
            "document.querySelector(\".o_gmail_card img[src^='/web/image/']\")"
            ".closest('.o_gmail_card').scrollIntoView({block: 'center'});"
            "const c = document.querySelector('.o_content');"
            "c.scrollTop += document.querySelector(\".o_gmail_card img[src^='/web/image/']\")"
            ".closest('.o_gmail_card').getBoundingClientRect().top - 250;"
        )
        time.sleep(0.5)
        browser.shot(out / "conversation.png")
        browser.goto(f"{args.url}/odoo/crm")
        browser.wait_for(".o_kanban_record")
        browser.js(
            "[...document.querySelectorAll('.o_kanban_record')]"
            ".find(r => r.textContent.includes('Baker Logistics'))?.click()"
        )
        browser.wait_for(".o_form_view .o_notebook .nav-link[name=gmail_emails]")
        browser.js("document.querySelector('.o_notebook .nav-link[name=gmail_emails]').click()")
        browser.wait_for(".o_field_widget[name=gmail_conversation_ids] .o_data_row")
        browser.js("document.querySelector('.o_notebook').scrollIntoView()")
        time.sleep(0.5)
        browser.shot(out / "deal-emails-page.png")
        # the composer, from the deal's Emails page ("Send email": To is the deal's address)
        browser.js("document.querySelector('button[name=action_gmail_compose]').click()")
        browser.wait_for(".modal .o_field_widget[name=email_to] input")
        browser.js(
            "const s = document.querySelector('.modal .o_field_widget[name=subject] input');"
            "s.value = 'Our offer for the new warehouse';"
            "s.dispatchEvent(new Event('input', {bubbles: true}));"
        )
        time.sleep(1)
        browser.shot(out / "composer.png")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
