"""``make demo``: set up the example shop and run it against the offline sandbox.

Migrates, loads sample products, creates a staff user and a buyer, starts plugipay_sandbox
(forwarding signed webhooks to the shop), the web server and, when CELERY_BROKER_URL is set, a
Celery worker. Prints the URLs and test cards; Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
WEB_PORT = int(os.environ.get("DEMO_PORT", "8000"))
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8787"))
SITE = f"http://127.0.0.1:{WEB_PORT}"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "PYTHONUNBUFFERED": "1",
    "PLUGIPAY_BASE_URL": f"http://127.0.0.1:{SANDBOX_PORT}",
}

USERS = """
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username="admin").exists():
    User.objects.create_superuser("admin", "admin@example.com", "admin")
if not User.objects.filter(username="buyer").exists():
    User.objects.create_user("buyer", "buyer@example.com", "buyer", first_name="Budi")
"""


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=HERE, env=ENV, check=True)


# Every management command runs Django's system checks and prints what they say. runserver
# prints them once, below; the set-up commands and the sandbox skip them, or the demo's
# start-up would show the same warnings four times.
SKIP_CHECKS = "--skip-checks"


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, *args], cwd=HERE, env=ENV)


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - loopback only
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {seconds:.0f}s")


#: the sandbox's test platform key (``PLUGIPAY_PLATFORM_KEY_ID`` / ``_SECRET`` replace it)
PLATFORM_KEY = (
    os.environ.get("PLUGIPAY_PLATFORM_KEY_ID", "pk_test_platform"),
    os.environ.get("PLUGIPAY_PLATFORM_SECRET", "sk_test_platform"),
)
SECOND_NOTE = """
  Second account  pick "Shop at the second shop" on the home page: its payments go to the
                  PLUGIPAY_SECOND_ACCOUNT workspace (the admin's Account filter shows them)"""


def set_up_second_account() -> str:
    """Provision PLUGIPAY_SECOND_ACCOUNT at the sandbox, register the shop's webhook URL for
    it, and return its signing secret (passed to the web server's environment)."""
    code = (
        f"from shop.accounts import set_up_second_account; print(set_up_second_account({SITE!r}))"
    )
    done = subprocess.run(
        [PYTHON, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=HERE,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C and SIGTERM stop everything, even when started where SIGINT was ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print("Setting up the example shop…", flush=True)
    manage("migrate", "--noinput", "-v", "0", SKIP_CHECKS)
    manage("loaddata", "products", "-v", "0", SKIP_CHECKS)
    manage("shell", "-v", "0", "-c", USERS)
    second = os.environ.get("PLUGIPAY_SECOND_ACCOUNT")
    sandbox = ["manage.py", "plugipay_sandbox", "--site-url", SITE, "--refund-delay", "2"]
    if second:  # the platform key that acts on behalf of the second account
        sandbox += ["--platform-key", f"{PLATFORM_KEY[0]}:{PLATFORM_KEY[1]}"]
    processes = [start(*sandbox, SKIP_CHECKS)]
    try:
        wait_for(f"http://127.0.0.1:{SANDBOX_PORT}/")
        if second:
            ENV["PLUGIPAY_SECOND_WEBHOOK_SECRET"] = set_up_second_account()
        processes.append(start("manage.py", "runserver", f"127.0.0.1:{WEB_PORT}", "--noreload"))
        if os.environ.get("CELERY_BROKER_URL"):
            processes.append(
                start("-m", "celery", "-A", "config", "worker", "-l", "info", "-c", "2")
            )
        wait_for(SITE + "/")
        manage("plugipay_plans", SKIP_CHECKS)
        note = SECOND_NOTE if second else ""  # the Member plan of settings.PLUGIPAY["PLANS"]
        print(
            f"""
Demo is up.
  Shop            {SITE}/            buyer / buyer
  Admin           {SITE}/admin/      admin / admin   (refund payments there)
  Membership      {SITE}/membership/  the "Member" plan: IDR 99,000 a month, 7-day trial
  DRF API         {SITE}/plugipay/api/payments/
  Sandbox         http://127.0.0.1:{SANDBOX_PORT}/   (not Plugipay: an offline stand-in){note}
Test cards (any future expiry, any CVC):
  4242 4242 4242 4242  succeeds          4000 0000 0000 0002  declined
  4000 0000 0000 9995  insufficient funds 4000 0027 6000 3184  3-D Secure step
Renewals run on the sandbox clock. To see one (and then a failed one, past_due), press
"Move the clock a month" on {SITE}/membership/, or:
  curl -H 'Content-Type: application/json' -d '{{"seconds": 2678400}}' http://127.0.0.1:{SANDBOX_PORT}/_sandbox/clock/advance
Press Ctrl-C to stop.""",
            flush=True,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("A demo process stopped; shutting down.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
