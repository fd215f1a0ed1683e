from django.urls import path

from ethics.portal import gate_views, safety_views, views

app_name = "ethics_portal"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:pk>/read/", views.notification_read, name="notification_read"),
    path("inbox/read-all/", views.notifications_read_all, name="notifications_read_all"),
    path("lookup/<slug:directory>/", views.lookup, name="lookup"),
    path("projects/new/", views.project_new, name="project_new"),
    path("projects/<int:trial_id>/edit/<int:step>/", views.project_edit, name="project_edit"),
    path("trials/<int:pk>/", views.trial_detail, name="trial_detail"),
    path("trials/<int:trial_id>/file/<slug:kind>/", views.report_file, name="report_file"),
    path("trials/<int:trial_id>/filings/<int:pk>/", views.filing_record, name="filing_record"),
    path("submissions/<int:pk>/", views.submission_detail, name="submission_detail"),
    path("submissions/<int:pk>/edit/", views.submission_edit, name="submission_edit"),
    path("submissions/<int:pk>/respond/", views.respond, name="respond"),
    path("submissions/<int:pk>/letter/", views.letter_download, name="letter_download"),
    path("documents/<int:pk>/", views.document_download, name="document_download"),
    path("sites/<int:pk>/enrolment/", views.site_enrolment, name="site_enrolment"),
    path("enrolment/<int:pk>/reverse/", views.enrolment_entry_reverse, name="enrolment_entry_reverse"),
    path("safety/", safety_views.safety_list, name="safety_list"),
    path("safety/new/", safety_views.safety_new, name="safety_new"),
    path("safety/<int:pk>/", safety_views.safety_detail, name="safety_detail"),
    path("safety/<int:pk>/follow-up/", safety_views.safety_follow_up, name="safety_follow_up"),
    path("safety/<int:pk>/<slug:step>/", safety_views.safety_step, name="safety_step"),
    path("qualifications/", gate_views.qualifications_page, name="qualifications"),
    path("sites/<int:pk>/start-up/", gate_views.site_startup, name="site_startup"),
]
