from django.apps import AppConfig


class BatchJobsConfig(AppConfig):
    name = "batchjobs"
    verbose_name = "Background jobs"
