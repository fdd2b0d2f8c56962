"""The engine never imports odoo: load it in a fresh interpreter where ``import odoo`` fails."""

import subprocess
import sys
from pathlib import Path

ADDON = Path(__file__).resolve().parent.parent / "crm_gmail_sync"

SCRIPT = f"""
import sys, types
sys.modules["odoo"] = None          # any 'import odoo' now raises ImportError
pkg = types.ModuleType("crm_gmail_sync"); pkg.__path__ = [{str(ADDON)!r}]
sys.modules["crm_gmail_sync"] = pkg
import pkgutil, importlib
import crm_gmail_sync.engine as engine
for mod in pkgutil.iter_modules(engine.__path__):
    importlib.import_module("crm_gmail_sync.engine." + mod.name)
raw = b"From: A <a@x.io>\\r\\nTo: b@y.io\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n"
msg = engine.parse_message(raw)
assert msg.header.from_[0].email == "a@x.io" and msg.body_text.strip() == "body"
assert not [m for m in sys.modules if m == "odoo" or m.startswith("odoo.")  if sys.modules[m]]
print("ok")
"""


def test_engine_works_without_odoo():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
