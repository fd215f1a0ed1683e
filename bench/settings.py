"""Settings for the benchmark's web server: the project's settings, with the report throttle out of the way.

The throttle still runs on every request (its cache read and write are part of what is measured); only its rate is
raised so that the load generator is not answered 429. Everything else, DEBUG off included, comes from
cgtclinic.settings and the environment as in production.
"""

from cgtclinic.settings import *  # noqa: F403
from cgtclinic.settings import REST_FRAMEWORK

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {**REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}), "reports": "100000000/hour"},
}
# The project's URLs and the authenticated floor the benchmark measures (bench/urls.py).
ROOT_URLCONF = "bench.urls"
