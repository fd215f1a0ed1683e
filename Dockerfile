# cgtclinic: one image for the web server (gunicorn), the Celery worker and Celery beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=cgtclinic.settings \
    CGT_DATA_DIR=/app/var

WORKDIR /app

# WeasyPrint (ethics decision letters as PDF) needs Pango and HarfBuzz; the letters are set in Noto CJK.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so a code change does not reinstall them. psycopg-binary ships its own libpq.
COPY requirements.txt .
RUN pip install --requirement requirements.txt

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

# The code stays owned by root: the app user can write only /app/var.
COPY . .

# Static files are built into the image (whitenoise serves them with hashed names); the throw-away key only
# lets settings load here, so no secret is generated into a layer. Uploaded files live on the media volume.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var/media \
    && chown -R app:app /app/var

USER app

EXPOSE 8000

CMD ["gunicorn", "cgtclinic.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", "--no-control-socket"]
