"""IMAP response parsing that Dovecot cannot show us: Gmail's extensions and odd layouts."""

import datetime as dt

from crm_gmail_sync.engine.mime import parse_headers
from crm_gmail_sync.engine.transport_imap import FetchedItem, parse_fetch, uid_set

HEAD = b"From: a@x.io\r\nMessage-ID: <m1@x.io>\r\nReferences: <root@x.io>\r\n\r\n"


def test_gmail_attributes_before_and_after_the_literal():
    data = [
        (
            b"1 (X-GM-THRID 1784 X-GM-MSGID 1785 UID 42 RFC822.SIZE 900 INTERNALDATE "
            b'"17-Jul-2026 02:44:25 -0700" BODY[HEADER.FIELDS (FROM)] {%d}' % len(HEAD),
            HEAD,
        ),
        b")",
        (b"2 (UID 43 BODY[HEADER.FIELDS (FROM)] {%d}" % len(HEAD), HEAD),
        b" X-GM-MSGID 1786 X-GM-THRID 1784 RFC822.SIZE 10)",
        b'3 (UID 44 RFC822.SIZE 0 BODY[HEADER.FIELDS (FROM)] "")',
    ]
    items = parse_fetch(data)
    assert [(i.uid, i.gm_msgid, i.gm_thrid, i.size) for i in items] == [
        (42, "1785", "1784", 900),
        (43, "1786", "1784", 10),
        (44, "", "", 0),
    ]
    assert items[0].internaldate == dt.datetime(2026, 7, 17, 9, 44, 25, tzinfo=dt.timezone.utc)
    head = parse_headers(
        items[1].data, gmail_msgid=items[1].gm_msgid, gmail_thrid=items[1].gm_thrid
    )
    assert head.dedupe_key == "gm:1786"  # Gmail's id wins over the Message-ID


def test_internaldate_variants():
    assert FetchedItem(1, internaldate_raw=b" 7-Jan-2026 23:59:59 +0000").internaldate == (
        dt.datetime(2026, 1, 7, 23, 59, 59, tzinfo=dt.timezone.utc)
    )
    assert FetchedItem(1, internaldate_raw=b"garbage").internaldate is None
    assert FetchedItem(1, internaldate_raw=b"31-Feb-2026 00:00:00 +0000").internaldate is None


def test_uid_set_compresses_ranges():
    assert uid_set([7, 1, 2, 3, 5, 6, 9]) == "1:3,5:7,9"
    assert uid_set([4]) == "4"
