"""trials 0007 moves immune-cell trials whose title names a CAR-T, CAR-NK or TCR-T product to gene-modified cell
therapy, leaves other immune-cell trials (TIL, NK …) where they are, and records the change in the history."""

import importlib

import pytest
from django.apps import apps

from tests.factories.trials import TrialFactory
from trials.models import Trial

pytestmark = pytest.mark.django_db
move = importlib.import_module("trials.migrations.0007_move_car_t_tcr_t_trials")
T = Trial.TherapyCategory


def test_car_t_and_tcr_t_trials_move_and_the_others_stay(capsys):
    moved = [
        TrialFactory(therapy_category=T.IMMUNE_CELL, title_zh="靶向BCMA的CAR-T细胞治疗多发性骨髓瘤", title_en=""),
        TrialFactory(
            therapy_category=T.IMMUNE_CELL, title_zh="实体瘤研究", title_en="NY-ESO-1 TCR-T cells for sarcoma"
        ),
        TrialFactory(therapy_category=T.IMMUNE_CELL, title_zh="CAR-NK 细胞治疗急性髓系白血病", title_en=""),
    ]
    stays = [
        TrialFactory(
            therapy_category=T.IMMUNE_CELL, title_zh="肿瘤浸润淋巴细胞（TIL）治疗宫颈癌", title_en="TIL therapy"
        ),
        # Already in a gene-therapy category: an edited allogeneic CAR-T stays gene editing.
        TrialFactory(therapy_category=T.GENE_EDITING, title_zh="基因编辑通用型 CAR-T 细胞", title_en=""),
    ]
    move.forwards(apps, None)

    for trial in moved:
        trial.refresh_from_db()
        assert trial.therapy_category == T.GENE_MODIFIED_CELL
        assert trial.history.latest().history_change_reason == move.REASON
    assert [Trial.objects.get(pk=t.pk).therapy_category for t in stays] == [T.IMMUNE_CELL, T.GENE_EDITING]
    printed = capsys.readouterr().out
    assert all(trial.protocol_number in printed for trial in moved)

    move.backwards(apps, None)
    assert {Trial.objects.get(pk=t.pk).therapy_category for t in moved} == {T.IMMUNE_CELL}
