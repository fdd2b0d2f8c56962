"""Real worker processes on one database and one Dovecot: each mailbox synced once per
round by two workers, a killed worker's mailbox picked up again, nothing lost or duplicated,
and a message that kills its worker passed over instead of stalling its mailbox."""

import collections
import json
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

from odoo.tests import tagged

from .common import WorkerDatabaseCase, make_raw
from .sched_worker import LEDGER, PAUSED, READY, RESULT

WORKER = Path(__file__).with_name("sched_worker.py")
GUARD = WorkerDatabaseCase.GUARD
CUSTOMER = "chris@acme.test"


class Worker:
    """A ``sched_worker.py run`` process: started, ready, then told to go."""

    def __init__(self, command):
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        self.events = collections.defaultdict(threading.Event)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.events[line.split(" ", 1)[0].strip()].set()
        for event in list(self.events.values()) + [self.events[READY], self.events[PAUSED]]:
            event.set()  # the worker ended: nobody waits any longer

    def wait_for(self, word):
        self.events[word].wait(GUARD)
        return any(line.startswith(word) for line in self.lines)

    def go(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self):
        self.proc.wait(GUARD)
        results = [line for line in self.lines if line.startswith(RESULT + " ")]
        return self.proc.returncode, results

    def ledger(self):
        return [
            json.loads(line[len(LEDGER) + 1 :]) for line in self.lines if line.startswith(LEDGER)
        ]


@tagged("post_install", "-at_install")
class TestWorkers(WorkerDatabaseCase):
    """Scheduler workers (sched_worker.py) in their own processes."""

    def _command(self, mode, args):
        return [sys.executable, str(WORKER), self.config_file, self.db, mode, json.dumps(args)]

    def _call(self, mode, args=None):
        run = subprocess.run(
            self._command(mode, args or {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=GUARD,
            check=False,
        )
        self.assertEqual(run.returncode, 0, run.stdout)
        [result] = [line for line in run.stdout.splitlines() if line.startswith(RESULT + " ")]
        return json.loads(result[len(RESULT) + 1 :])

    def _mailboxes(self, count, batch_size=200):
        """``count`` new Dovecot accounts and their mailboxes: ``{mailbox id: login}``."""
        tag = secrets.token_hex(3)
        accounts = []
        for number in range(count):
            login = f"w{number}.{tag}@ourco.test"
            self.server.add_user(login, secrets.token_urlsafe(12))
            accounts.append({"login": login, "password": self.server.password(login)})
        ids = self._call(
            "setup",
            {
                "accounts": accounts,
                "host": self.server.host,
                "port": self.server.imaps_port,
                "ca_file": self.server.ca_file,
                "customer": CUSTOMER,
                "batch_size": batch_size,
            },
        )["ids"]
        return dict(zip(ids, (account["login"] for account in accounts)))

    def _append(self, login, subject):
        raw = make_raw(CUSTOMER, login, subject=subject, message_id=f"<{subject}.{login}>")
        self.server.append(login, "INBOX", raw)

    def _start(self, **args):
        worker = Worker(self._command("run", args))
        self.addCleanup(lambda: worker.proc.poll() is None and worker.proc.kill())
        self.assertTrue(worker.wait_for(READY), "".join(worker.lines))
        return worker

    def _finish(self, worker):
        code, results = worker.result()
        self.assertEqual((code, len(results)), (0, 1), "".join(worker.lines))
        return json.loads(results[0][len(RESULT) + 1 :])

    # ------------------------------------------------------------ tests
    def test_two_workers_sync_each_mailbox_once_per_round(self):
        boxes = self._mailboxes(8)
        for round_ in (1, 2):
            for login in boxes.values():
                self._append(login, f"r{round_}a")
                self._append(login, f"r{round_}b")
            self._call("make_due")
            workers = [self._start(), self._start()]
            for worker in workers:
                worker.go()
            done = [self._finish(worker)["done"] for worker in workers]
            ledger = [entry for worker in workers for entry in worker.ledger()]
            synced = collections.Counter(entry["mailbox"] for entry in ledger)
            self.assertEqual(synced, collections.Counter(dict.fromkeys(boxes, 1)), ledger)
            self.assertEqual(sum(done), len(boxes))
        report = self._call("report", {"ids": list(boxes)})
        for mailbox_id in boxes:
            entry = report[str(mailbox_id)]
            self.assertEqual(entry["subjects"], ["r1a", "r1b", "r2a", "r2b"], entry)
            self.assertEqual((entry["due"], entry["state"]), (False, "connected"))

    def test_a_killed_workers_mailbox_is_picked_up_again(self):
        boxes = self._mailboxes(3, batch_size=1)
        first = min(boxes)
        for login in boxes.values():
            for name in ("k1", "k2", "k3"):
                self._append(login, name)
        self._call("make_due")
        victim = self._start(pause_at=first)
        victim.go()
        self.assertTrue(victim.wait_for(PAUSED), "".join(victim.lines))
        # while it holds the mailbox, another worker passes it over and takes the others
        other = self._start()
        other.go()
        self.assertEqual(self._finish(other)["done"], len(boxes) - 1)
        self.assertNotIn(first, [entry["mailbox"] for entry in other.ledger()])
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(GUARD)
        self._wait_disconnected()
        report = self._call("report", {"ids": [first]})[str(first)]
        self.assertEqual(report["subjects"], ["k3"])  # its first batch (newest first) stays
        self.assertTrue(report["due"])  # still due: no stale claim
        # the next worker takes it at once and stores the rest, once each
        again = self._start()
        again.go()
        self.assertEqual(self._finish(again)["done"], 1)
        report = self._call("report", {"ids": list(boxes)})
        for mailbox_id in boxes:
            entry = report[str(mailbox_id)]
            self.assertEqual(entry["subjects"], ["k1", "k2", "k3"], entry)
            self.assertEqual((entry["count_stored"], entry["due"]), (3, False), entry)
            self.assertEqual(entry["sync_crashes"], 0)

    def test_a_message_that_kills_its_worker_is_passed_over(self):
        boxes = self._mailboxes(1)
        [(mailbox_id, login)] = boxes.items()
        for name in ("p1", "p2", "poison", "p3", "p4"):
            self._append(login, name)
        self._call("make_due")
        deaths = 0
        for _run in range(5):
            worker = self._start(poison="poison")
            worker.go()
            worker.proc.wait(GUARD)
            if worker.proc.returncode != -signal.SIGKILL:
                self.assertEqual(worker.proc.returncode, 0, "".join(worker.lines))
                break
            deaths += 1
            self._wait_disconnected()
        # the first run dies with the whole batch; the second and the third, one email at
        # a time, at the poison both times; the fourth passes it over
        self.assertEqual(deaths, 3)
        report = self._call("report", {"ids": [mailbox_id]})[str(mailbox_id)]
        self.assertEqual(report["subjects"], ["p1", "p2", "p3", "p4"])
        self.assertEqual((report["count_stored"], report["count_unparseable"]), (4, 1))
        self.assertEqual((report["sync_crashes"], report["due"]), (0, False))
