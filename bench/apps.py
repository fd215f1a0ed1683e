from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BenchConfig(AppConfig):
    """The benchmark's tools: the scale data generator (manage.py generate_scale_data). No models."""

    name = "bench"
    verbose_name = _("Benchmark")
