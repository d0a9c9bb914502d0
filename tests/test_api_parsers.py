"""The API parses with the project's own REST_FRAMEWORK DEFAULT_PARSER_CLASSES (a JSON-only
project's API accepts no form or multipart body), each made strict."""

import os
import subprocess
import sys

SCRIPT = """
import django
from django.conf import settings
django.setup()
from rest_framework.parsers import FormParser, MultiPartParser
from django_plugipay.api.views import PaymentRefundCreate
from django_plugipay.api.money import PayoutList
for view in (PaymentRefundCreate, PayoutList):
    kinds = view.parser_classes
    assert FormParser not in kinds and MultiPartParser not in kinds, (view.__name__, kinds)
"""

SETTINGS = """
from tests.settings import *  # noqa
REST_FRAMEWORK = {**globals().get("REST_FRAMEWORK", {}),
                  "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"]}
"""


def test_a_json_only_projects_parsers_are_kept(tmp_path):
    (tmp_path / "json_only_settings.py").write_text(SETTINGS)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "json_only_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), root]),
    }
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-600:]
