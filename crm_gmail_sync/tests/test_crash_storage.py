"""A crash or a full disk while an attachment's file is written costs no email: the batch
comes again and is stored, whole (the filestore side of test_sync_robustness.py)."""

import contextlib
import errno
import hashlib
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path
from unittest.mock import patch

import psycopg2
from odoo.addons.base.models.ir_attachment import IrAttachment as BaseAttachment
from odoo.exceptions import UserError
from odoo.sql_db import close_db, db_connect
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models.ir_attachment import AttachmentStorageError
from .common import MAILBOX_LOGGER, DovecotCommon, WorkerDatabaseCase, make_raw
from .crash_worker import RESULT, WRITING, filestore_writes

_numbers = itertools.count(1)
OWNER = "olivia@ourco.test"
CUSTOMER = "chris@acme.test"
WORKER = Path(__file__).with_name("crash_worker.py")
GUARD = WorkerDatabaseCase.GUARD
NEUTRAL_ERROR = "Storing the fetched mail failed; it is fetched again next time."


def disk_full(file, data):
    """A write that stops half-way, as on a full disk."""
    file.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def leftovers(filestore, sha):
    """The files and GC checklist entries named after ``sha`` that are not its own file:
    temporary files left behind."""
    found = []
    for base in (filestore, os.path.join(filestore, "checklist")):
        for prefix in {sha[:2], sha[:3]}:
            folder = os.path.join(base, prefix)
            if os.path.isdir(folder):
                found += [
                    os.path.join(folder, name)
                    for name in os.listdir(folder)
                    if name.startswith(sha) and name != sha
                ]
    return found


@tagged("post_install", "-at_install")
class TestCrashStorage(DovecotCommon):
    """In this process: the filestore as a crash or a full disk leaves it."""

    def setUp(self):
        super().setUp()
        self.box = self.mailbox_owner
        self.login = self.connect_new_server_user(self.box, "olivia.crash")
        self.mailbox_colleague.active = False  # the cron fetches this test's mailbox only
        self.tag = secrets.token_hex(4)
        self.filestore = self.env["ir.attachment"]._filestore()

    # ------------------------------------------------------------ helpers
    def _mid(self, name):
        return f"<{name}.{self.tag}@acme.test>"

    def _append(self, name, content=None):
        attachments = [("figures.bin", content, "application/octet-stream")] if content else ()
        raw = make_raw(
            CUSTOMER, OWNER, subject=name, message_id=self._mid(name), attachments=attachments
        )
        return self.server.append(self.login, "INBOX", raw)

    def _stored(self, name):
        return (
            self.env["crm.gmail.message"]
            .sudo()
            .search([("mailbox_id", "=", self.box.id), ("message_id_header", "=", self._mid(name))])
        )

    def _cursor_high(self):
        return json.loads(self.box.sync_state or "{}")["INBOX"]["high"]

    def _content(self, content=None):
        """``(content, sha1)``; the files are removed after the test (its rows are rolled
        back: their files would be garbage)."""
        content = content or os.urandom(48 * 1024)
        sha = hashlib.sha1(content).hexdigest()

        def remove():
            for fname in (f"{sha[:2]}/{sha}", f"{sha[:3]}/{sha}"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.filestore, fname))

        self.addCleanup(remove)
        return content, sha

    def _write_file(self, fname, data):
        path = os.path.join(self.filestore, fname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(data)
        return path

    def _assert_stored_whole(self, name, content, fname, uid):
        message = self._stored(name)
        self.assertEqual(len(message), 1)
        attachment = message.attachment_ids
        self.assertEqual(len(attachment), 1)
        self.assertEqual(attachment.store_fname, fname)
        self.assertEqual(attachment.checksum, hashlib.sha1(content).hexdigest())
        self.assertEqual(attachment.file_size, len(content))
        attachment.invalidate_recordset(["raw"])
        self.assertEqual(attachment.raw, content)
        self.assertEqual(Path(self.filestore, fname).read_bytes(), content)
        self.assertEqual(leftovers(self.filestore, attachment.checksum), [])
        self.assertEqual(self._cursor_high(), uid)

    # ------------------------------------------------------------ a partial file
    def test_partial_file_under_the_content_name_is_repaired(self):
        """As a worker killed mid-write left it before this fix (Odoo writes in place)."""
        content, sha = self._content()
        fname = f"{sha[:2]}/{sha}"
        self._write_file(fname, content[: len(content) // 2])
        uid = self._append("repaired", content)
        self.fetch_due()
        self.assertEqual((self.box.count_stored, self.box.count_unparseable), (1, 0))
        self._assert_stored_whole("repaired", content, fname, uid)
        self.assertEqual(self.box.state, "connected")

    def test_partial_file_kept_by_a_legacy_get_path_is_repaired(self):
        """Odoo up to 15 (and add-ons that copied its ``_get_path``) kept an existing
        ``sha[:3]/sha`` file without a look at its content: the content is checked here,
        whichever name Odoo gives."""
        content, sha = self._content()
        fname = f"{sha[:3]}/{sha}"
        self._write_file(fname, content[: len(content) // 2])
        real_get_path = BaseAttachment._get_path

        def legacy_get_path(attachments, bin_data, checksum):
            legacy = f"{checksum[:3]}/{checksum}"
            full_path = attachments._full_path(legacy)
            if os.path.isfile(full_path):
                return legacy, full_path
            return real_get_path(attachments, bin_data, checksum)

        uid = self._append("legacy", content)
        with patch.object(BaseAttachment, "_get_path", legacy_get_path):
            self.fetch_due()
        self.assertEqual((self.box.count_stored, self.box.count_unparseable), (1, 0))
        self._assert_stored_whole("legacy", content, fname, uid)

    @mute_logger(MAILBOX_LOGGER)
    def test_genuine_collision_is_still_refused(self):
        """Another content under the same name (a SHA-1 collision, made here with a
        checksum blind to case) keeps its file: Odoo refuses the email, which is counted
        as unparseable, as before."""
        content = secrets.token_hex(8 * 1024).upper().encode()
        other = content.lower()

        def checksum(attachments, bin_data):
            return hashlib.sha1((bin_data or b"").lower()).hexdigest()

        sha = checksum(None, content)
        self._content(other)  # its file is removed after the test
        path = self._write_file(f"{sha[:2]}/{sha}", other)
        self._append("collision", content)
        with patch.object(BaseAttachment, "_compute_checksum", checksum):
            self.fetch_due()
        self.assertFalse(self._stored("collision"))
        self.assertEqual((self.box.count_stored, self.box.count_unparseable), (0, 1))
        self.assertEqual(Path(path).read_bytes(), other)

    def test_other_attachments_keep_odoos_behaviour(self):
        """Only the attachments of synced emails are written this way."""
        content, sha = self._content()
        self._write_file(f"{sha[:2]}/{sha}", content[: len(content) // 2])
        with self.assertRaisesText(UserError, "collides with an existing file"):
            self.env["ir.attachment"].create({"name": "upload.bin", "raw": content})

    # ------------------------------------------------------------ a failed write
    @mute_logger(MAILBOX_LOGGER)
    def test_write_failure_keeps_the_cursor_and_stores_nothing(self):
        uid_first = self._append("first")
        self.fetch_due()
        cursor = self.box.sync_state
        self.assertEqual(self._cursor_high(), uid_first)
        content, sha = self._content()
        uid = self._append("disk-full", content)
        raised = None
        with filestore_writes(self.filestore, disk_full):
            try:
                self.fetch_due()  # in a test the cron raises instead of rolling back
            except AttachmentStorageError as exc:  # not assertRaises: it would roll back
                raised = exc
        self.assertIsInstance(raised, AttachmentStorageError)
        self.assertEqual(raised.__cause__.errno, errno.ENOSPC)
        # nothing stored, nothing counted, the cursor where it was, no file left
        self.assertFalse(self._stored("disk-full"))
        self.assertFalse(self.env["ir.attachment"].sudo().search([("checksum", "=", sha)]))
        self.assertEqual(self.box.sync_state, cursor)
        self.assertEqual((self.box.count_stored, self.box.count_unparseable), (1, 0))
        self.assertFalse(os.path.exists(os.path.join(self.filestore, sha[:2], sha)))
        self.assertEqual(leftovers(self.filestore, sha), [])
        # the next run stores it
        self.fetch_due()
        self.assertEqual((self.box.count_stored, self.box.count_unparseable), (2, 0))
        self._assert_stored_whole("disk-full", content, f"{sha[:2]}/{sha}", uid)

    @mute_logger(MAILBOX_LOGGER)
    def test_write_failure_on_sync_now_is_said_in_plain_words(self):
        content, sha = self._content()
        self._append("disk-full", content)
        with filestore_writes(self.filestore, disk_full):
            action = self.box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertTrue(action["params"]["message"].startswith("Storing the fetched mail failed"))
        self.assertEqual(self.box.last_error, action["params"]["message"])
        self.assertFalse(self._stored("disk-full"))
        self.assertFalse(self.box.sync_state and self._cursor_high())
        self.box.with_user(self.user_owner).action_sync_now()
        self.assertEqual(len(self._stored("disk-full")), 1)


@tagged("post_install", "-at_install")
class TestCrashedWorker(WorkerDatabaseCase):
    """Real worker processes, killed or refused by the kernel, on committed data.

    A test's transaction is invisible to other processes (and holds locks that a worker
    would wait for): the workers use a database of their own, created with the addon
    installed and dropped afterwards, filestore included.
    """

    DB_SUFFIX = "crash"

    def setUp(self):
        super().setUp()
        n = next(_numbers)
        self.login = f"cora.crash.{n}@ourco.test"
        self.server.add_user(self.login, secrets.token_urlsafe(12))
        self.mid = f"<killed.{n}.{secrets.token_hex(4)}@acme.test>"
        result = self._worker(
            "setup",
            {
                "tag": str(n),
                "email": self.login,
                "customer": CUSTOMER,
                "host": self.server.host,
                "port": self.server.imaps_port,
                "login": self.login,
                "password": self.server.password(self.login),
                "ca_file": self.server.ca_file,
            },
        )
        self.mailbox_id = result["mailbox_id"]

    # ------------------------------------------------------------ helpers
    def _command(self, mode, args):
        return [sys.executable, str(WORKER), self.config_file, self.db, mode, json.dumps(args)]

    def _worker(self, mode, args=None):
        """Run a worker to its end; its result (``RESULT`` line) and its whole output."""
        run = subprocess.run(
            self._command(mode, args or {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=GUARD,
            check=False,
        )
        self.assertEqual(run.returncode, 0, run.stdout)
        results = [line for line in run.stdout.splitlines() if line.startswith(RESULT + " ")]
        self.assertEqual(len(results), 1, run.stdout)
        self._output = run.stdout
        return json.loads(results[0][len(RESULT) + 1 :])

    def _start_sync_paused_mid_write(self):
        """Start a sync that stops in the middle of writing a file: ``(process, lines)``,
        the process alive (the caller kills it)."""
        proc = subprocess.Popen(
            self._command("sync", {"kill_mid_write": True}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines, writing = [], threading.Event()

        def read():
            for line in proc.stdout:
                lines.append(line)
                if line.startswith(WRITING + " "):
                    writing.set()
            writing.set()  # the worker ended: do not wait any longer

        threading.Thread(target=read, daemon=True).start()
        writing.wait(GUARD)
        if proc.poll() is not None:
            self.fail("".join(lines))  # it must be alive, in the middle of a write
        return proc, lines

    def _kill_mid_write(self):
        """Start a sync, SIGKILL it while it writes a file; the half-written file's path."""
        proc, lines = self._start_sync_paused_mid_write()
        proc.kill()
        proc.wait()
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        [path] = [line.split(" ", 1)[1].strip() for line in lines if line.startswith(WRITING)]
        return path

    def _append(self, content):
        raw = make_raw(
            CUSTOMER,
            self.login,
            subject="Figures",
            message_id=self.mid,
            attachments=[("figures.bin", content, "application/octet-stream")],
        )
        return self.server.append(self.login, "INBOX", raw)

    def _report(self):
        return self._worker("report", {"mailbox_id": self.mailbox_id})

    def _assert_stored_once_whole(self, report, content, uid):
        sha = hashlib.sha1(content).hexdigest()
        self.assertEqual([m["message_id"] for m in report["messages"]], [self.mid])
        [attachment] = report["messages"][0]["attachments"]
        self.assertEqual(attachment["name"], "figures.bin")
        self.assertEqual(attachment["checksum"], sha)
        self.assertEqual(attachment["file_size"], len(content))
        self.assertEqual(attachment["raw_sha1"], sha)  # as Odoo reads it back
        self.assertEqual(Path(report["filestore"], attachment["store_fname"]).read_bytes(), content)
        mailbox = report["mailbox"]
        self.assertEqual((mailbox["count_stored"], mailbox["count_unparseable"]), (1, 0))
        self.assertEqual(mailbox["sync_state"]["INBOX"]["high"], uid)
        self.assertEqual(mailbox["state"], "connected")
        self.assertIsNone(mailbox["last_error"])

    # ------------------------------------------------------------ tests
    def test_worker_killed_mid_write_loses_no_email(self):
        content = os.urandom(96 * 1024)
        sha = hashlib.sha1(content).hexdigest()
        uid = self._append(content)
        path = self._kill_mid_write()
        # the kill left half a file, and neither the email nor a cursor
        self.assertEqual(os.path.getsize(path), len(content) // 2)
        report = self._report()
        self.assertEqual(report["messages"], [])
        self.assertIsNone(report["mailbox"]["sync_state"])
        self._wait_disconnected()
        # the next run stores the email once, whole; Odoo's GC takes what the kill left
        self._worker("sync")
        self._worker("gc")
        report = self._report()
        self._assert_stored_once_whole(report, content, uid)
        self.assertEqual(leftovers(report["filestore"], sha), [])

    def test_the_filestore_gc_waits_for_a_sync_writing_files(self):
        """Odoo's GC deletes checklisted files no committed row names: while a sync writes
        (or reuses) an attachment's file, before its row is committed, the GC must wait."""
        self._append(os.urandom(96 * 1024))
        proc, lines = self._start_sync_paused_mid_write()
        try:
            with db_connect(self.db).cursor() as cr:
                with (
                    self.assertRaises(psycopg2.errors.LockNotAvailable),
                    mute_logger("odoo.sql_db"),
                ):
                    cr.execute("LOCK TABLE ir_attachment IN SHARE MODE NOWAIT")  # the GC's lock
        finally:
            proc.kill()
            proc.wait()
            close_db(self.db)  # no pooled session of this test left in the workers' database
        self.assertTrue(any(line.startswith(WRITING) for line in lines))

    def test_file_too_large_for_the_kernel_keeps_the_cursor(self):
        """A write the kernel refuses (file size limit: EFBIG, as ENOSPC on a full disk)."""
        content = os.urandom(96 * 1024)
        sha = hashlib.sha1(content).hexdigest()
        uid = self._append(content)
        self._worker("sync", {"file_size_limit": len(content) // 2})
        # the cron's rollback path: the cause in the server log, a neutral error for the owner
        self.assertIn("AttachmentStorageError", self._output)
        self.assertIn(os.strerror(errno.EFBIG), self._output)
        report = self._report()
        self.assertEqual(report["messages"], [])
        mailbox = report["mailbox"]
        self.assertIsNone(mailbox["sync_state"])
        self.assertEqual((mailbox["count_stored"], mailbox["count_unparseable"]), (0, 0))
        self.assertTrue(mailbox["last_error"].startswith(NEUTRAL_ERROR), mailbox["last_error"])
        self.assertEqual(mailbox["last_error_kind"], "storage")  # not the mail's fault
        self.assertNotEqual(mailbox["state"], "error")
        self.assertFalse(os.path.exists(os.path.join(report["filestore"], sha[:2], sha)))
        self.assertEqual(leftovers(report["filestore"], sha), [])
        # the next run stores it
        self._worker("sync")
        self._assert_stored_once_whole(self._report(), content, uid)
