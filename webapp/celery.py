"""The Celery application shared by the web process (which only enqueues) and the inference worker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The web process never imports inference.tasks (it would pull in torch): it
# enqueues by task name. Only a worker started with `-A webapp` and
# `--include inference.tasks` registers the task.
