"""Trials filed as immune-cell therapy whose title names a gene-modified cell product (CAR-T, CAR-NK, TCR-T) move
to the new category gene_modified_cell; the others (TIL, NK, CIK …) stay other immune-cell therapy. The moved
trials are printed, and a history row records the change. Backwards: they go back to immune_cell."""

import re

from django.db import migrations
from django.utils import timezone

# The product names a title uses for cells given a chimeric antigen receptor or an engineered T-cell receptor.
GENE_MODIFIED = re.compile(r"CAR[\s-]?(T|NK)|TCR[\s-]?T|嵌合抗原受体|T细胞受体(基因)?(修饰|工程)", re.IGNORECASE)
REASON = "Therapy category: gene-modified cell therapy (CAR-T, TCR-T), by its title (migration trials 0007)"


def forwards(apps, schema_editor):
    Trial = apps.get_model("trials", "Trial")
    HistoricalTrial = apps.get_model("trials", "HistoricalTrial")
    moved = []
    for trial in Trial.objects.filter(therapy_category="immune_cell").order_by("pk"):
        if GENE_MODIFIED.search(trial.title_zh or "") or GENE_MODIFIED.search(trial.title_en or ""):
            trial.therapy_category = "gene_modified_cell"
            trial.save(update_fields=["therapy_category"])
            fields = {f.attname: getattr(trial, f.attname) for f in Trial._meta.concrete_fields}
            HistoricalTrial.objects.create(
                **fields,
                history_date=timezone.now(),
                history_type="~",
                history_change_reason=REASON,
            )
            moved.append(trial.protocol_number)
    if moved:
        print(f"\n  Moved to gene-modified cell therapy (CAR-T, TCR-T), by title: {', '.join(moved)}")


def backwards(apps, schema_editor):
    Trial = apps.get_model("trials", "Trial")
    Trial.objects.filter(therapy_category="gene_modified_cell").update(therapy_category="immune_cell")


class Migration(migrations.Migration):
    dependencies = [("trials", "0006_therapy_category_gene_modified_cell")]

    operations = [migrations.RunPython(forwards, backwards)]
