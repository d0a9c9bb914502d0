"""The baseline: verify the HMAC and store the raw body, nothing else."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from benchmarks.baseline.models import RawDelivery
from django_plugipay.exceptions import SignatureError
from django_plugipay.webhooks import verify_signature


@csrf_exempt
@require_POST
def baseline_webhook(request):
    try:
        verify_signature(request.body, request.headers.get("X-Plugipay-Signature"), ["whsec_bench"])
    except SignatureError:
        return HttpResponse(status=401)
    RawDelivery.objects.create(body=request.body)
    return HttpResponse(status=200)
