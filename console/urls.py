"""The staff console's routes (namespace ``console``)."""

from django.urls import path

from console.views import health, home, switch

app_name = "console"

# The staff console. Names are reversed as "console:<name>".
urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", home.home, name="home"),
    path("switch/", switch.tenant_switch, name="tenant-switch"),
]

# --- staff access (issue 3) ---
from console.views import api_keys, auth  # noqa: E402

urlpatterns += [
    path("setup/", auth.setup, name="setup"),
    path("login/", auth.login, name="login"),
    path("login/verify/", auth.login_verify, name="login-verify"),
    path("login/enroll/", auth.login_enroll, name="login-enroll"),
    path("logout/", auth.logout_view, name="logout"),
    path("staff/accept/<str:token>/", auth.staff_accept, name="staff-accept"),
    path("account/security/", auth.account_security, name="account-security"),
    path("account/security/password/", auth.account_password, name="account-password"),
    path("account/security/backup-codes/", auth.account_backup_codes, name="account-backup-codes"),
    path("account/security/authenticator/", auth.account_authenticator,
         name="account-authenticator"),
    path("account/reverify/", auth.reverify, name="reverify"),
    path("account/time-zone/", auth.account_time_zone, name="account-time-zone"),
    path("account/tokens/", api_keys.staff_tokens, name="staff-tokens"),
    path("account/tokens/create/", api_keys.staff_token_create, name="staff-token-create"),
    path("account/tokens/<uuid:token_id>/revoke/", api_keys.staff_token_revoke, name="staff-token-revoke"),
    path("t/<slug:slug>/api-keys/", api_keys.api_keys, name="api-keys"),
    path("t/<slug:slug>/api-keys/create/", api_keys.api_key_create, name="api-key-create"),
    path("t/<slug:slug>/api-keys/<uuid:key_id>/revoke/", api_keys.api_key_revoke, name="api-key-revoke"),
]
from console.views import mail, staff, tenant_admins  # noqa: E402

urlpatterns += [
    path("staff/", staff.staff_index, name="staff-list"),
    path("staff/invite/", staff.staff_invite, name="staff-invite"),
    path("staff/<uuid:pk>/", staff.staff_detail, name="staff-detail"),
    path("staff/<uuid:pk>/deactivate/", staff.staff_deactivate, name="staff-deactivate"),
    path("staff/<uuid:pk>/reactivate/", staff.staff_reactivate, name="staff-reactivate"),
    path("staff/<uuid:pk>/two-step/reset/", staff.staff_otp_reset, name="staff-otp-reset"),
    path("staff/<uuid:pk>/instance-admin/", staff.staff_instance_admin,
         name="staff-instance-admin"),
    path("staff/<uuid:pk>/resend/", staff.staff_resend, name="staff-resend"),
    path("staff/<uuid:pk>/roles/", staff.staff_role_assign, name="staff-role-assign"),
    path("staff/<uuid:pk>/roles/<slug:slug>/remove/", staff.staff_role_remove,
         name="staff-role-remove"),
    path("t/<slug:slug>/admins/", tenant_admins.tenant_admins, name="tenant-admins"),
    path("t/<slug:slug>/admins/add/", tenant_admins.tenant_admin_add, name="tenant-admin-add"),
    path("t/<slug:slug>/admins/invites/<uuid:invite_id>/withdraw/", tenant_admins.tenant_invite_withdraw,
         name="tenant-invite-withdraw"),
    path("invites/<uuid:invite_id>/accept/", tenant_admins.tenant_invite_accept, name="tenant-invite-accept"),
    path("invites/<uuid:invite_id>/decline/", tenant_admins.tenant_invite_decline, name="tenant-invite-decline"),
    path("t/<slug:slug>/admins/<uuid:user_id>/role/", tenant_admins.tenant_admin_role,
         name="tenant-admin-role"),
    path("t/<slug:slug>/admins/<uuid:user_id>/remove/", tenant_admins.tenant_admin_remove,
         name="tenant-admin-remove"),
    path("mail/", mail.mail_list, name="mail-list"),
    path("mail/<uuid:pk>/", mail.mail_detail, name="mail-detail"),
]

# --- users console (issue 4) ---
from console.views import invitations, users  # noqa: E402

_U = "t/<slug:slug>/users/<uuid:user_id>/"
urlpatterns += [
    path("t/<slug:slug>/users/", users.user_list, name="users-list"),
    path("t/<slug:slug>/users/columns/", users.user_columns, name="users-columns"),
    path("t/<slug:slug>/users/export.csv", users.user_export, name="users-export"),
    path("t/<slug:slug>/users/import/", users.user_import, name="users-import"),
    path("t/<slug:slug>/users/new/", users.user_create, name="users-create"),
    path("t/<slug:slug>/users/invite/", users.user_invite, name="users-invite"),
    path("t/<slug:slug>/users/batch/", users.users_batch, name="users-batch"),
    path(_U, users.user_detail, name="users-detail"),
    path(_U + "edit/", users.user_edit, name="users-edit"),
    path(_U + "metadata/", users.user_metadata, name="users-metadata"),
    path(_U + "ban/", users.user_ban, name="users-ban"),
    path(_U + "unban/", users.user_unban, name="users-unban"),
    path(_U + "recovery/", users.user_recovery, name="users-recovery"),
    path(_U + "magic-link/", users.user_magic_link, name="users-magic-link"),
    path(_U + "sign-out/", users.user_sign_out, name="users-sign-out"),
    path(_U + "factors/remove/", users.user_factor_remove, name="users-factor-remove"),
    path(_U + "confirm-email/", users.user_confirm_email, name="users-confirm-email"),
    path(_U + "resend-invitation/", users.user_resend_invitation, name="users-resend-invitation"),
    path(_U + "delete/", users.user_delete, name="users-delete"),
    path("t/<slug:slug>/invitations/", invitations.invitation_list, name="invitations-list"),
    path("t/<slug:slug>/invitations/<uuid:user_id>/resend/", invitations.invitation_resend,
         name="invitations-resend"),
    path("t/<slug:slug>/invitations/<uuid:user_id>/revoke/", invitations.invitation_revoke,
         name="invitations-revoke"),
]

# --- impersonation (the portal side is portal.urls) ---
from console.views import impersonation  # noqa: E402

urlpatterns += [
    path("t/<slug:slug>/impersonations/", impersonation.impersonation_list, name="impersonations"),
    path("t/<slug:slug>/impersonations/start/<uuid:user_id>/", impersonation.impersonation_start,
         name="impersonation-start"),
    path("t/<slug:slug>/impersonations/<uuid:impersonation_id>/end/", impersonation.impersonation_end,
         name="impersonation-end"),
]

# --- tenants, settings, audit, dashboards (issue 6) ---
from console.views import audit as audit_views  # noqa: E402
from console.views import dashboard, tenant_settings  # noqa: E402
from console.views import tenants as tenant_views  # noqa: E402

urlpatterns += [
    path("tenants/", tenant_views.tenant_list, name="tenants-list"),
    path("tenants/new/", tenant_views.tenant_create, name="tenants-create"),
    path("tenants/migrate/", tenant_views.tenant_migrate_all, name="tenants-migrate-all"),
    path("tenants/<slug:slug>/", tenant_views.tenant_detail, name="tenants-detail"),
    path("tenants/<slug:slug>/edit/", tenant_views.tenant_edit, name="tenants-edit"),
    path("tenants/<slug:slug>/retry/", tenant_views.tenant_retry, name="tenants-retry"),
    path("tenants/<slug:slug>/migrate/", tenant_views.tenant_migrate, name="tenants-migrate"),
    path("tenants/<slug:slug>/purge/", tenant_views.tenant_purge, name="tenants-purge"),
    path("tenants/<slug:slug>/<str:verb>/", tenant_views.tenant_lifecycle,
         name="tenants-lifecycle"),
    path("audit/", audit_views.audit_instance, name="audit-instance"),
    path("audit/export.csv", audit_views.audit_instance_export, name="audit-instance-export"),
    path("t/<slug:slug>/audit/", audit_views.audit_tenant, name="audit-tenant"),
    path("t/<slug:slug>/audit/export.csv", audit_views.audit_tenant_export,
         name="audit-tenant-export"),
    path("t/<slug:slug>/", dashboard.tenant_dashboard, name="tenant-dashboard"),
    path("t/<slug:slug>/settings/", tenant_settings.settings_edit, name="tenant-settings"),
    path("t/<slug:slug>/settings/emails/<str:kind>/", tenant_settings.email_template_edit,
         name="tenant-email-template"),
    path("t/<slug:slug>/settings/emails/<str:kind>/preview/",
         tenant_settings.email_template_preview, name="tenant-email-preview"),
    path("t/<slug:slug>/settings/emails/<str:kind>/reset/",
         tenant_settings.email_template_reset, name="tenant-email-reset"),
]

# --- batch jobs (issue 13) ---
from console.views import jobs  # noqa: E402

_J = "t/<slug:slug>/jobs/<uuid:job_id>/"
urlpatterns += [
    path("t/<slug:slug>/jobs/", jobs.job_list, name="jobs-list"),
    path("t/<slug:slug>/jobs/indicator/", jobs.job_indicator, name="jobs-indicator"),
    path(_J, jobs.job_detail, name="job-detail"),
    path(_J + "start/", jobs.job_start, name="job-start"),
    path(_J + "cancel/", jobs.job_cancel, name="job-cancel"),
    path(_J + "undo/", jobs.job_undo, name="job-undo"),
    path(_J + "outcomes.csv", jobs.job_outcomes_csv, name="job-outcomes-csv"),
    path("jobs/<uuid:job_id>/", jobs.instance_job, name="instance-job"),
    path("jobs/<uuid:job_id>/cancel/", jobs.instance_job_cancel, name="instance-job-cancel"),
]

# --- webhooks (issue 14) ---
from console.views import webhooks  # noqa: E402

_W = "t/<slug:slug>/webhooks/<uuid:endpoint_id>/"
urlpatterns += [
    path("t/<slug:slug>/webhooks/", webhooks.webhook_list, name="webhooks-list"),
    path("t/<slug:slug>/webhooks/new/", webhooks.webhook_create, name="webhooks-create"),
    path(_W, webhooks.webhook_detail, name="webhooks-detail"),
    path(_W + "edit/", webhooks.webhook_edit, name="webhooks-edit"),
    path(_W + "delete/", webhooks.webhook_delete, name="webhooks-delete"),
    path(_W + "secret/", webhooks.webhook_secret, name="webhooks-secret"),
    path(_W + "test/", webhooks.webhook_test, name="webhooks-test"),
    path(_W + "replay/", webhooks.webhook_replay, name="webhooks-replay"),
    path(_W + "deliveries/<int:delivery_id>/", webhooks.delivery_detail, name="webhooks-delivery"),
    path(_W + "deliveries/<int:delivery_id>/replay/", webhooks.delivery_replay,
         name="webhooks-delivery-replay"),
]
# The instance's endpoints (tenant events of every tenant), instance admins only.
_IW = "webhooks/<uuid:endpoint_id>/"
urlpatterns += [
    path("webhooks/", webhooks.instance_webhook_list, name="instance-webhooks-list"),
    path("webhooks/new/", webhooks.instance_webhook_create, name="instance-webhooks-create"),
    path(_IW, webhooks.instance_webhook_detail, name="instance-webhooks-detail"),
    path(_IW + "edit/", webhooks.instance_webhook_edit, name="instance-webhooks-edit"),
    path(_IW + "delete/", webhooks.instance_webhook_delete, name="instance-webhooks-delete"),
    path(_IW + "secret/", webhooks.instance_webhook_secret, name="instance-webhooks-secret"),
    path(_IW + "test/", webhooks.instance_webhook_test, name="instance-webhooks-test"),
    path(_IW + "replay/", webhooks.instance_webhook_replay, name="instance-webhooks-replay"),
    path(_IW + "deliveries/<int:delivery_id>/", webhooks.instance_delivery_detail,
         name="instance-webhooks-delivery"),
    path(_IW + "deliveries/<int:delivery_id>/replay/", webhooks.instance_delivery_replay,
         name="instance-webhooks-delivery-replay"),
]
