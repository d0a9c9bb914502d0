import os

# With a broker, the project has a Celery app and django-plugipay (TASKS="auto") queues its task
# work there; without one there is no app and that work runs in-process, after commit.
if os.environ.get("CELERY_BROKER_URL"):
    from config.celery import app as celery_app

    __all__ = ["celery_app"]
