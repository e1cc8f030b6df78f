"""The Celery application, configured from Django settings (namespace CELERY).

Tasks live in each app's `tasks.py` (autodiscovered); the beat schedule is
`CELERY_BEAT_SCHEDULE` in settings.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcphub.settings")

app = Celery("mcphub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
