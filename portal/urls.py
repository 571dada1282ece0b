from django.urls import path

from portal.views import account, auth, links

app_name = "portal"

urlpatterns = [
    path("", auth.login, name="home"),
    path("login/", auth.login, name="login"),
    path("login/verify/", auth.login_verify, name="login-verify"),
    path("logout/", auth.logout, name="logout"),
    path("recover/", links.recover_request, name="recover-request"),
    path("magic/", links.magic_request, name="magic-request"),
    path("recover/sent/", links.link_sent, name="recover-sent"),
    path("magic/sent/", links.link_sent, name="magic-sent"),
    path("accept/<str:token>/", links.accept, name="accept"),
    path("recover/<str:token>/", links.recover, name="recover"),
    path("magic/<str:token>/", links.magic, name="magic"),
    path("email-change/<str:token>/", links.email_change, name="email-change"),
    path("account/", account.account, name="account"),
    path("account/profile/", account.profile, name="profile"),
    path("account/password/", account.password, name="password"),
    path("account/mfa/", account.mfa, name="mfa"),
    path("account/mfa/<uuid:factor_id>/confirm/", account.mfa_confirm, name="mfa-confirm"),
    path("account/mfa/<uuid:factor_id>/remove/", account.mfa_remove, name="mfa-remove"),
    path("account/sessions/<str:scope>/end/", account.sessions_end, name="sessions-end"),
    path("impersonation/stop/", account.impersonation_stop_view, name="impersonation-stop"),
]
