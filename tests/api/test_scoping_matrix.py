"""Every role × every API endpoint → allowed or denied, for rows of the user's own institution, of another
institution in the same region ("neighbour") and of an institution in another region."""

import pytest

from tests.api.helpers import ROLES, trial_payload, upload_payload


def expect(ro, eo, pi, reg, admin, anon=401) -> dict:
    return dict(zip(ROLES, (ro, eo, pi, reg, admin, anon), strict=True))


# name: (method, path, body or None, expected status per role). Paths and bodies are built from the world.
ENDPOINTS = {
    "trials-retrieve-own": ("get", lambda w: f"/api/v1/trials/{w.own.pk}/", None, expect(200, 200, 200, 200, 200)),
    "trials-retrieve-neighbour": (
        "get",
        lambda w: f"/api/v1/trials/{w.neighbour.pk}/",
        None,
        expect(404, 404, 404, 200, 200),
    ),
    "trials-retrieve-other-region": (
        "get",
        lambda w: f"/api/v1/trials/{w.other.pk}/",
        None,
        expect(404, 404, 404, 404, 200),
    ),
    "trials-create-own": (
        "post",
        lambda w: "/api/v1/trials/",
        lambda w: trial_payload(lead=w.institution),
        expect(201, 403, 403, 403, 201),
    ),
    "trials-create-for-neighbour": (
        "post",
        lambda w: "/api/v1/trials/",
        lambda w: trial_payload(lead=w.neighbour_institution),
        expect(403, 403, 403, 403, 201),
    ),
    "trials-update-own": (
        "patch",
        lambda w: f"/api/v1/trials/{w.own.pk}/",
        lambda w: {"title_en": "Renamed"},
        # The PI may edit their own project while it is a draft (trials.services.check_trial_fields).
        expect(200, 403, 200, 403, 200),
    ),
    "trials-update-neighbour": (
        "patch",
        lambda w: f"/api/v1/trials/{w.neighbour.pk}/",
        lambda w: {"title_en": "Renamed"},
        expect(404, 403, 404, 403, 200),
    ),
    "trials-submit-own": (
        "post",
        lambda w: f"/api/v1/trials/{w.own.pk}/submit/",
        None,
        expect(200, 403, 200, 403, 200),
    ),
    "trials-submit-neighbour": (
        "post",
        lambda w: f"/api/v1/trials/{w.neighbour.pk}/submit/",
        None,
        expect(404, 404, 404, 403, 200),
    ),
    "trials-submit-other-region": (
        "post",
        lambda w: f"/api/v1/trials/{w.other.pk}/submit/",
        None,
        expect(404, 404, 404, 404, 200),
    ),
    "sites-retrieve-own": (
        "get",
        lambda w: f"/api/v1/sites/{w.own.sites.get().pk}/",
        None,
        expect(200, 200, 200, 200, 200),
    ),
    "sites-retrieve-neighbour": (
        "get",
        lambda w: f"/api/v1/sites/{w.neighbour.sites.get().pk}/",
        None,
        expect(404, 404, 404, 200, 200),
    ),
    "sites-retrieve-other-region": (
        "get",
        lambda w: f"/api/v1/sites/{w.other.sites.get().pk}/",
        None,
        expect(404, 404, 404, 404, 200),
    ),
    "sites-create-own": (
        "post",
        lambda w: "/api/v1/sites/",
        lambda w: {"trial": w.own.pk, "institution": w.neighbour_institution.pk},
        # The PI may add sites to their own draft project.
        expect(201, 403, 201, 403, 201),
    ),
    # The neighbour's trial is not visible to the institution: it reads as not existing (400 on the field).
    "sites-create-neighbour": (
        "post",
        lambda w: "/api/v1/sites/",
        lambda w: {"trial": w.neighbour.pk, "institution": w.institution.pk},
        expect(400, 403, 400, 403, 201),
    ),
    "sites-update-own": (
        "patch",
        lambda w: f"/api/v1/sites/{w.own.sites.get().pk}/",
        lambda w: {"site_target": 12},
        expect(200, 403, 200, 403, 200),
    ),
    "sites-update-neighbour": (
        "patch",
        lambda w: f"/api/v1/sites/{w.neighbour.sites.get().pk}/",
        lambda w: {"site_target": 12},
        expect(404, 403, 404, 403, 200),
    ),
    "documents-retrieve-own": (
        "get",
        lambda w: f"/api/v1/documents/{w.own_doc.pk}/",
        None,
        expect(200, 200, 200, 403, 200),
    ),
    "documents-retrieve-neighbour": (
        "get",
        lambda w: f"/api/v1/documents/{w.neighbour_doc.pk}/",
        None,
        expect(404, 404, 404, 403, 200),
    ),
    "documents-download-own": (
        "get",
        lambda w: f"/api/v1/documents/{w.own_doc.pk}/download/",
        None,
        expect(200, 200, 200, 403, 200),
    ),
    "documents-download-neighbour": (
        "get",
        lambda w: f"/api/v1/documents/{w.neighbour_doc.pk}/download/",
        None,
        expect(404, 404, 404, 403, 200),
    ),
    "documents-download-other-region": (
        "get",
        lambda w: f"/api/v1/documents/{w.other_doc.pk}/download/",
        None,
        expect(404, 404, 404, 403, 200),
    ),
    "documents-upload-own": (
        "post",
        lambda w: "/api/v1/documents/",
        lambda w: upload_payload(w.own),
        expect(201, 403, 201, 403, 201),
    ),
    "documents-upload-neighbour": (
        "post",
        lambda w: "/api/v1/documents/",
        lambda w: upload_payload(w.neighbour),
        expect(400, 400, 400, 403, 201),
    ),
    "institutions-list": ("get", lambda w: "/api/v1/institutions/", None, expect(200, 200, 200, 200, 200)),
    "institutions-retrieve-other-region": (
        "get",
        lambda w: f"/api/v1/institutions/{w.other_institution.pk}/",
        None,
        expect(200, 200, 200, 200, 200),
    ),
    "sponsors-list": ("get", lambda w: "/api/v1/sponsors/", None, expect(200, 200, 200, 200, 200)),
    "sponsors-retrieve": (
        "get",
        lambda w: f"/api/v1/sponsors/{w.other.sponsor_id}/",
        None,
        expect(200, 200, 200, 200, 200),
    ),
    "regions-list": ("get", lambda w: "/api/v1/regions/", None, expect(200, 200, 200, 200, 200)),
    "regions-retrieve": (
        "get",
        lambda w: f"/api/v1/regions/{w.other_institution.region_id}/",
        None,
        expect(200, 200, 200, 200, 200),
    ),
}

CASES = [(name, role) for name in ENDPOINTS for role in ROLES]


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "role"), CASES, ids=[f"{name}-{role}" for name, role in CASES])
def test_endpoint_for_role(endpoint, role, world):
    method, path, body, expected = ENDPOINTS[endpoint]
    client = world.client(role)
    data = body(world) if body else None
    fmt = "multipart" if endpoint.startswith("documents-upload") else "json"
    response = getattr(client, method)(path(world), data=data, format=fmt)
    assert response.status_code == expected[role], getattr(response, "data", response)


# Which rows each role finds in each list, and how to find the row of each trial.
LISTS = {
    "trials": ("/api/v1/trials/", lambda w, key: getattr(w, key).pk),
    "sites": ("/api/v1/sites/", lambda w, key: getattr(w, key).sites.get().pk),
    "documents": ("/api/v1/documents/", lambda w, key: getattr(w, f"{key}_doc").pk),
}
VISIBLE = {
    "trials": expect({"own"}, {"own"}, {"own"}, {"own", "neighbour"}, {"own", "neighbour", "other"}),
    "sites": expect({"own"}, {"own"}, {"own"}, {"own", "neighbour"}, {"own", "neighbour", "other"}),
    "documents": expect({"own"}, {"own"}, {"own"}, 403, {"own", "neighbour", "other"}),
}
LIST_CASES = [(name, role) for name in LISTS for role in ROLES]


@pytest.mark.django_db
@pytest.mark.parametrize(("listing", "role"), LIST_CASES, ids=[f"{name}-list-{role}" for name, role in LIST_CASES])
def test_list_for_role(listing, role, world):
    path, row_id = LISTS[listing]
    expected = VISIBLE[listing][role]
    response = world.client(role).get(path)
    if isinstance(expected, int):
        assert response.status_code == expected
        return
    assert response.status_code == 200
    key_of = {row_id(world, key): key for key in ("own", "neighbour", "other")}
    assert {key_of[row["id"]] for row in response.data["results"]} == expected
