"""The scheduler in one process: due times, order, time budgets, backoff, workers setting.

The multi-process side (two workers, a killed one, a message that kills its worker) is in
test_workers.py.
"""

import datetime as dt
import secrets
import socket
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..engine import errors as engine_errors
from ..engine.backoff import next_delay
from ..models import crm_gmail_scheduler as scheduler
from .common import MAILBOX_LOGGER, DovecotCommon, make_raw

OWNER = "olivia@ourco.test"
CUSTOMER = "chris@acme.test"
NOW = dt.datetime(2026, 12, 1, 12, 0, 0)


class Clock:
    """A monotonic clock that moves only when told to (or by ``step`` per reading)."""

    def __init__(self, start=1000.0, step=0.0):
        self.now, self.step = start, step

    def __call__(self):
        value = self.now
        self.now += self.step
        return value


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@tagged("post_install", "-at_install")
class TestScheduler(DovecotCommon):
    def setUp(self):
        super().setUp()
        self.tag = secrets.token_hex(4)
        self.Mailbox = self.env["crm.gmail.mailbox"].sudo()
        # the fixture's two mailboxes, plus four more owners with a mailbox each
        self.boxes = self.mailbox_owner | self.mailbox_colleague
        self.logins = {}
        for box in self.boxes:
            self.logins[box] = self.connect_new_server_user(box, "sched")
        for number in range(4):
            user = self._seat_user(f"sched{number}")
            box = self.Mailbox.create(
                {"user_id": user.id, "email": user.email, "provider": "imap", "host": "x"}
            )
            self.logins[box] = self.connect_new_server_user(box, f"sched{number}")
            self.boxes |= box

    def _seat_user(self, name):
        from odoo.addons.mail.tests.common import mail_new_test_user

        return mail_new_test_user(
            self.env,
            login=f"{name}.{self.tag}",
            email=f"{name}.{self.tag}@ourco.test",
            groups="base.group_user,sales_team.group_sale_salesman_all_leads,"
            "crm_gmail_sync.group_mail_addon",
        )

    def _append(self, box, name):
        raw = make_raw(CUSTOMER, box.email, subject=name, message_id=f"<{name}.{self.tag}@x>")
        return self.server.append(self.logins[box], "INBOX", raw)

    def _synced(self):
        """The mailboxes in the order ``_gmail_sync_claimed`` was called on them."""
        order = []
        real = type(self.Mailbox)._gmail_sync_claimed

        def spy(records, *args, **kwargs):
            order.append(records.id)
            return real(records, *args, **kwargs)

        return order, patch.object(type(self.Mailbox), "_gmail_sync_claimed", spy)

    # ------------------------------------------------------------ order and due times
    def test_most_overdue_first_then_not_again_before_its_interval(self):
        boxes = self.boxes
        dates = [NOW - dt.timedelta(minutes=m) for m in (3, 30, 1, 10, 2, 20)]
        for box, date in zip(boxes, dates):
            box.sync_next_date = date
        boxes[2].sync_next_date = False  # never synced: first of all
        expected = [boxes[2]] + sorted(
            boxes - boxes[2], key=lambda box: (box.sync_next_date, box.id)
        )
        order, spy = self._synced()
        with spy, patch.object(fields.Datetime, "now", return_value=NOW):
            done = self.Mailbox._gmail_sync_due()
        self.assertEqual(done, len(boxes))
        self.assertEqual(order, [box.id for box in expected])
        self.assertEqual(set(boxes.mapped("sync_next_date")), {NOW + dt.timedelta(minutes=5)})
        self.assertEqual(set(boxes.mapped("state")), {"connected"})
        # nothing is due before the interval: a second run syncs nothing
        order.clear()
        with spy, patch.object(fields.Datetime, "now", return_value=NOW + dt.timedelta(minutes=4)):
            self.assertEqual(self.Mailbox._gmail_sync_due(), 0)
        self.assertEqual(order, [])
        # once it has passed, every mailbox once more, in the order of its last sync
        with spy, patch.object(fields.Datetime, "now", return_value=NOW + dt.timedelta(minutes=5)):
            self.assertEqual(self.Mailbox._gmail_sync_due(), len(boxes))
        self.assertEqual(order, sorted(boxes.ids))

    def test_a_time_budget_starves_no_mailbox(self):
        """Each run has time for two mailboxes only: every mailbox is synced within three
        runs, each once, and new mail of each is stored."""
        self.boxes._gmail_make_due()
        for box in self.boxes:
            self._append(box, f"m{box.id}")
        order, spy = self._synced()
        clock = Clock()
        runs = []
        with spy, patch.object(type(self.Mailbox), "_gmail_clock", lambda self: clock()):
            for _run in range(3):
                deadline = clock.now + 10
                before = len(order)
                real_claimed = type(self.Mailbox)._gmail_sync_claimed

                def slow(records, *args, real_claimed=real_claimed, **kwargs):
                    result = real_claimed(records, *args, **kwargs)
                    clock.now += 5  # each mailbox takes 5 s of a 10 s budget
                    return result

                with patch.object(type(self.Mailbox), "_gmail_sync_claimed", slow):
                    self.Mailbox._gmail_sync_due(deadline)
                runs.append(len(order) - before)
        self.assertEqual(runs, [2, 2, 2])
        self.assertEqual(sorted(order), sorted(self.boxes.ids))  # each once: no starvation
        for box in self.boxes:
            subjects = (
                self.env["crm.gmail.message"]
                .sudo()
                .search([("mailbox_id", "=", box.id)])
                .mapped("subject")
            )
            self.assertEqual(subjects, [f"m{box.id}"])

    def _triggers(self):
        cron = self.env.ref(scheduler.CRON_XMLID)
        return self.env["ir.cron.trigger"].sudo().search([("cron_id", "=", cron.id)])

    def test_the_cron_ends_its_job_and_triggers_the_next_while_mail_is_due(self):
        """Odoo's watchdog covers a cron worker's whole turn, re-runs included: each run
        ends its job (remaining=0) and triggers a new one while mailboxes are due."""
        self.boxes._gmail_make_due()
        reported = []
        with patch.object(
            type(self.env["ir.cron"]),
            "_notify_progress",
            lambda cron, done, remaining, deactivate=False: reported.append((done, remaining)),
        ):
            triggers = self._triggers()
            with patch.object(type(self.Mailbox), "_gmail_budget", lambda self: 0.0):
                self.Mailbox._cron_fetch()  # no time at all: nothing done, all still due
            self.assertEqual(reported[-1], (0, 0))
            self.assertEqual(len(self._triggers() - triggers), 1)  # the next run, at once
            triggers = self._triggers()
            self.Mailbox._cron_fetch()
        self.assertEqual(reported[-1], (len(self.boxes), 0))
        self.assertFalse(self._triggers() - triggers)  # nothing due: no new trigger
        # after each mailbox, committed progress: a killed run is not a timed-out cron
        self.assertEqual(reported[1:-1], [(done, 1) for done in range(1, len(self.boxes) + 1)])

    def test_a_copy_right_after_another_in_one_process_passes_its_turn(self):
        self.boxes._gmail_make_due()
        order, spy = self._synced()
        cron = self.env.ref(scheduler.CRON_XMLID)
        with spy, patch.object(scheduler, "_LAST_RUN_END", [self.Mailbox._gmail_clock()]):
            triggers = self._triggers()
            self.Mailbox.with_context(cron_id=cron.id)._cron_fetch()
            self.assertEqual(order, [])  # the process's watchdog period is another's
            [trigger] = self._triggers() - triggers
            self.assertGreater(trigger.call_at, fields.Datetime.now())
        with spy, patch.object(scheduler, "_LAST_RUN_END", [0.0]):  # after a pause
            self.Mailbox.with_context(cron_id=cron.id)._cron_fetch()
        self.assertEqual(sorted(order), sorted(self.boxes.ids))

    def test_the_budget_fits_odoos_time_limits(self):
        budget = self.Mailbox._gmail_budget
        cases = [
            ({"limit_time_real": 120, "limit_time_real_cron": -1}, 30.0),  # Odoo's defaults
            ({"limit_time_real": 90, "limit_time_real_cron": -1}, 16.0),
            ({"limit_time_real": 120, "limit_time_real_cron": 600}, 30.0),
            ({"limit_time_real": 0, "limit_time_real_cron": 0}, scheduler.BUDGET),
            ({"limit_time_real": 60, "limit_time_real_cron": -1}, scheduler.MIN_BUDGET),
        ]
        for limits, expected in cases:
            with patch.dict(scheduler.config.options, limits):
                self.assertEqual(budget(), expected, limits)
        self.env["ir.config_parameter"].sudo().set_param(scheduler.PARAM_BUDGET, "12")
        self.assertEqual(budget(), 12.0)

    # ------------------------------------------------------------ failures
    @mute_logger(MAILBOX_LOGGER)
    def test_network_errors_back_off_exponentially_and_only_that_mailbox(self):
        box = self.mailbox_owner
        box.write({"port": closed_port(), "security": "starttls"})
        self.boxes._gmail_make_due()
        attempts = []
        for failures in (1, 2, 3):
            now = NOW + dt.timedelta(hours=failures)
            with (
                patch.object(fields.Datetime, "now", return_value=now),
                patch.object(scheduler.random, "random", return_value=0.5),
            ):
                box._gmail_make_due()
                self.Mailbox._gmail_sync_due()
            attempts.append(box.sync_next_date - now)
            self.assertEqual(box.sync_failures, failures)
            self.assertEqual(box.last_error_kind, "network")
            self.assertNotEqual(box.state, "error")  # transient: it stays scheduled
        expected = [
            dt.timedelta(seconds=next_delay(n, engine_errors.NETWORK, rng=lambda: 0.5))
            for n in (1, 2, 3)
        ]
        self.assertEqual(attempts, expected)
        self.assertLess(attempts[0], attempts[1])
        self.assertLess(attempts[1], attempts[2])
        # the others synced normally, on their interval
        for other in self.boxes - box:
            self.assertEqual(other.sync_failures, 0)
            self.assertEqual(other.state, "connected")
        # the next attempt is shown on the mailbox, and a new server setting retries now
        self.assertTrue(box.sync_next_date)
        box.write({"port": self.server.imaps_port, "security": "ssl"})
        self.assertFalse(box.sync_next_date)
        self.assertEqual(box.sync_failures, 0)
        self.Mailbox._gmail_sync_due()
        self.assertEqual((box.state, box.sync_failures), ("connected", 0))

    @mute_logger(MAILBOX_LOGGER)
    def test_a_refused_login_waits_for_new_credentials(self):
        box = self.mailbox_owner
        box.write({"password": "wrong"})
        self.boxes._gmail_make_due()
        self.Mailbox._gmail_sync_due()
        self.assertEqual((box.state, box.last_error_kind), ("error", "auth"))
        # due or not, it is not claimed again
        box.sync_next_date = False
        order, spy = self._synced()
        with spy:
            self.Mailbox._gmail_sync_due()
        self.assertNotIn(box.id, order)
        box.write({"password": self.server.password(self.logins[box])})
        with spy:
            self.Mailbox._gmail_sync_due()
        self.assertIn(box.id, order)
        self.assertEqual(box.state, "connected")

    def test_throttled_answers_back_off_that_mailbox_only(self):
        box = self.mailbox_owner
        self.boxes._gmail_make_due()
        error = engine_errors.ThrottledError(server_text="[THROTTLED] Too many requests")
        with (
            patch.object(fields.Datetime, "now", return_value=NOW),
            patch.object(scheduler.random, "random", return_value=0.0),
        ):
            box._set_error(error)
        self.assertEqual(box.last_error_kind, engine_errors.THROTTLED)
        self.assertNotEqual(box.state, "error")
        self.assertEqual(
            box.sync_next_date - NOW,
            dt.timedelta(seconds=next_delay(1, engine_errors.THROTTLED, rng=lambda: 0.0)),
        )
        self.assertIn("[THROTTLED]", box.last_error)
        for other in self.boxes - box:
            self.assertFalse(other.sync_next_date)

    # ------------------------------------------------------------ idle cost
    def test_database_work_per_idle_mailbox_does_not_grow_with_the_mailboxes(self):
        """No neighbour prefetch: each idle mailbox costs the same queries among 2, 4 or 6."""
        self.boxes._gmail_make_due()
        self.Mailbox._gmail_sync_due()  # first syncs: every mailbox idle from here on

        def queries(boxes):
            boxes._gmail_make_due()
            self.env.flush_all()
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            self.assertEqual(self.Mailbox._gmail_sync_due(), len(boxes))
            return self.env.cr.sql_log_count - before

        two, four, six = (queries(self.boxes[:n]) for n in (2, 4, 6))
        self.assertEqual(six - four, four - two)  # the same for each mailbox, whatever n
        self.assertGreater(four - two, 0)

    # ------------------------------------------------------------ settings
    def test_sync_workers_setting_keeps_that_many_scheduled_actions(self):
        Settings = self.env["res.config.settings"]
        main = self.env.ref(scheduler.CRON_XMLID)
        Settings.create({"crm_gmail_sync_workers": 3, "crm_gmail_sync_interval": 7}).execute()
        crons = self.Mailbox._gmail_worker_crons()
        self.assertEqual(len(crons), 3)
        self.assertEqual(crons[0], main)
        self.assertEqual(set(crons.mapped("interval_number")), {7})
        self.assertEqual(set(crons.mapped("code")), {"model._cron_fetch()"})
        self.assertEqual(Settings.create({}).crm_gmail_sync_workers, 3)
        Settings.create({"crm_gmail_sync_workers": 1}).execute()
        self.assertEqual(self.Mailbox._gmail_worker_crons(), main)
        self.assertTrue(main.exists())
