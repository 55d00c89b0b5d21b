"""Second client for tests/wiring.rs: nats-py against a real nats-server.

Reads a JSON job on stdin:
  {"url": "nats://127.0.0.1:PORT",
   "pairs": [{"publisher": CREDS, "subscriber": CREDS, "subject": S, "expect": true|false}],
   "requests": [{"requester": CREDS, "inbox_prefix": P, "responder": CREDS, "subject": S}]}
and prints one JSON line per case: {"case": ..., "ok": bool, "detail": ...}.
Exits 1 if any case did not behave as expected. No mocks: real connections only.
"""

import asyncio
import json
import sys

import nats


async def connect(url, creds, errors, inbox_prefix="_INBOX"):
    async def on_error(e):
        errors.append(str(e))

    return await nats.connect(url, user_credentials=creds, error_cb=on_error, max_reconnect_attempts=0,
                              allow_reconnect=False, inbox_prefix=inbox_prefix)


async def pair(url, p):
    errors = []
    sub_nc = await connect(url, p["subscriber"], errors)
    pub_nc = await connect(url, p["publisher"], errors)
    got = asyncio.get_running_loop().create_future()
    token = f"nats-py {p['subject']}".encode()

    async def handler(msg):
        if msg.data == token and not got.done():
            got.set_result(msg.subject)

    await sub_nc.subscribe(p["subject"], cb=handler)
    await sub_nc.flush()
    # A cross-account SUB reaches the exporter asynchronously: publish again
    # (same subject and payload) every 200 ms until it arrives, for up to 5 s.
    subject, received = None, False
    for _ in range(25 if p["expect"] else 5):
        await pub_nc.publish(p["subject"], token)
        await pub_nc.flush()
        try:
            subject = await asyncio.wait_for(asyncio.shield(got), 0.2)
            received = True
            break
        except asyncio.TimeoutError:
            pass
    await pub_nc.close()
    await sub_nc.close()
    ok = received == p["expect"]
    return {"case": "pair", "subject": p["subject"], "expect": p["expect"], "received": received,
            "ok": ok, "detail": {"delivered_on": subject, "errors": errors}}


async def request(url, r):
    errors = []
    resp_nc = await connect(url, r["responder"], errors)
    req_nc = await connect(url, r["requester"], errors, r.get("inbox_prefix", "_INBOX"))
    reply_subjects = []

    async def handler(msg):
        reply_subjects.append(msg.reply)
        await msg.respond(b"answer from nats-py")

    await resp_nc.subscribe(r["subject"], cb=handler)
    await resp_nc.flush()
    detail = {"retries": 0}
    ok = False
    # The responder's SUB may not be wired through the service import yet when
    # the first request arrives (no responders, or silence): retry only that, for 10 s.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            msg = await req_nc.request(r["subject"], b"question", timeout=0.5)
            ok = msg.data == b"answer from nats-py"
            detail["reply"] = msg.data.decode()
            break
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as e:
            if asyncio.get_running_loop().time() > deadline:
                detail["error"] = repr(e)
                break
            detail["retries"] += 1
            await asyncio.sleep(0.05)
        except Exception as e:  # any other failure is a failed case, with its reason
            detail["error"] = repr(e)
            break
    detail["reply_subjects"] = reply_subjects
    detail["errors"] = errors
    await req_nc.close()
    await resp_nc.close()
    return {"case": "request", "subject": r["subject"], "ok": ok, "detail": detail}


async def main():
    job = json.load(sys.stdin)
    failed = 0
    for p in job.get("pairs", []):
        res = await pair(job["url"], p)
        failed += not res["ok"]
        print(json.dumps(res), flush=True)
    for r in job.get("requests", []):
        res = await request(job["url"], r)
        failed += not res["ok"]
        print(json.dumps(res), flush=True)
    sys.exit(1 if failed else 0)


asyncio.run(main())
