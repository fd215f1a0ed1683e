"""Each claim paid before payments had rows gets one payment row from its amount, day and reference; a claim paid
less than approved becomes partly paid with its balance (it was wrongly closed as paid)."""

from django.db import migrations


def forwards(apps, schema_editor):
    Claim = apps.get_model("subsidies", "Claim")
    ClaimPayment = apps.get_model("subsidies", "ClaimPayment")
    ClaimStatusChange = apps.get_model("subsidies", "ClaimStatusChange")
    reopened = []
    for claim in Claim.objects.filter(amount_paid__isnull=False).order_by("pk"):
        change = (
            ClaimStatusChange.objects.filter(claim_id=claim.pk, to_status="paid").order_by("-at", "-id").first()
        )
        if change is None:
            continue
        balance = claim.amount_approved - claim.amount_paid
        ClaimPayment.objects.create(
            claim_id=claim.pk,
            amount=claim.amount_paid,
            paid_on=claim.paid_on,
            reference=claim.payment_reference,
            recorded_by_id=change.actor_id,
            recorded_at=change.at,
            balance_after=balance,
        )
        if balance > 0 and claim.status == "paid":
            claim.status = "partially_paid"
            claim.save(update_fields=["status"])
            change.to_status = "partially_paid"
            change.note = (change.note + "\n" if change.note else "") + (
                f"{claim.amount_paid} of {claim.amount_approved} RMB paid: partly paid, {balance} RMB owed "
                "(corrected by migration subsidies 0004)."
            )
            change.save(update_fields=["to_status", "note"])
            reopened.append(f"{claim.year}-{claim.pk:05d}")
    if reopened:
        print(f"\n  Claims paid less than approved, now partly paid with their balance: {', '.join(reopened)}")


class Migration(migrations.Migration):
    dependencies = [("subsidies", "0003_claim_payments_partly_paid")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
