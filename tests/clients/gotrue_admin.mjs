// Drives the real, unmodified @supabase/supabase-js and @supabase/auth-js admin clients against
// a live server. Prints one JSON line per check: {"check", "ok", "detail"}; the exit code is 0.
// Environment: BASE (the tenant project URL, .../t/<slug>), ADMIN_KEY, VIEWER_KEY, RATE_KEY,
// SESSION_TOKEN (a portal session to sign out), FACTOR_USER and FACTOR_ID (a user's TOTP factor).
import { createClient } from '@supabase/supabase-js'
import { GoTrueAdminApi, isAuthApiError, isAuthWeakPasswordError } from '@supabase/auth-js'
import WebSocket from 'ws'

const env = process.env
const BASE = env.BASE
const run = `${Date.now()}`
const results = []

function check(name, ok, detail = '') {
  results.push({ check: name, ok: Boolean(ok), detail: typeof detail === 'string' ? detail : JSON.stringify(detail) })
}

function client(key) {
  return createClient(BASE, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket },
  }).auth.admin
}

async function main() {
  const admin = client(env.ADMIN_KEY)
  const email = `js-${run}@example.com`

  let r = await admin.createUser({ email, password: 'correct-horse-battery', email_confirm: true,
    user_metadata: { keep: 1, drop: 2 }, app_metadata: { plan: 'pro' } })
  const id = r.data?.user?.id
  check('createUser', !r.error && id && r.data.user.email === email && r.data.user.app_metadata.plan === 'pro', r.error ?? r.data)

  r = await admin.getUserById(id)
  check('getUserById', !r.error && r.data.user.id === id && r.data.user.identities.length === 1, r.error ?? r.data)

  for (let i = 0; i < 3; i++) await admin.createUser({ email: `js-${run}-${i}@example.com` })
  r = await admin.listUsers({ page: 1, perPage: 2 })
  check('listUsers paging', !r.error && r.data.users.length === 2 && r.data.total >= 4 && r.data.nextPage === 2
    && r.data.lastPage === Math.ceil(r.data.total / 2), { error: r.error, total: r.data?.total, next: r.data?.nextPage, last: r.data?.lastPage })
  const page2 = await admin.listUsers({ page: 2, perPage: 2 })
  check('listUsers page 2 differs', !page2.error && page2.data.users.every(u => !r.data.users.some(v => v.id === u.id)), page2.error)
  r = await admin.listUsers()
  check('listUsers default (empty page params)', !r.error && r.data.users.length >= 4, r.error)

  r = await admin.updateUserById(id, { user_metadata: { drop: null, added: 3 }, ban_duration: '24h' })
  check('updateUserById merge + ban', !r.error && JSON.stringify(r.data.user.user_metadata) === JSON.stringify({ keep: 1, added: 3 })
    && r.data.user.banned_until, r.error ?? r.data.user)
  r = await admin.updateUserById(id, { ban_duration: 'none' })
  check('updateUserById unban', !r.error && !r.data.user.banned_until, r.error ?? r.data.user)
  r = await admin.updateUserById(id, { ban_duration: '7d' })
  check('updateUserById bad duration', isAuthApiError(r.error) && r.error.status === 400 && r.error.code === 'validation_failed', r.error)

  r = await admin.createUser({ email })
  check('email_exists (2024-01-01 format)', isAuthApiError(r.error) && r.error.status === 422 && r.error.code === 'email_exists', r.error)
  r = await admin.createUser({ email: `weak-${run}@example.com`, password: 'short' })
  check('weak_password', isAuthWeakPasswordError(r.error) && r.error.reasons.includes('length') && r.error.status === 422, r.error)

  const invited = `inv-${run}@example.com`
  r = await admin.inviteUserByEmail(invited, { data: { team: 'a' } })
  check('inviteUserByEmail', !r.error && r.data.user.invited_at && r.data.user.user_metadata.team === 'a', r.error ?? r.data)

  r = await admin.generateLink({ type: 'recovery', email })
  check('generateLink recovery', !r.error && r.data.properties.action_link.includes('/recover/')
    && r.data.properties.verification_type === 'recovery' && r.data.user.id === id, r.error ?? r.data)
  r = await admin.generateLink({ type: 'recovery', email, options: { redirectTo: 'https://app.example.com/after/js' } })
  check('generateLink redirectTo on the allow-list', !r.error
    && r.data.properties.redirect_to === 'https://app.example.com/after/js'
    && r.data.properties.action_link.endsWith('?redirect_to=https%3A%2F%2Fapp.example.com%2Fafter%2Fjs'), r.error ?? r.data)
  r = await admin.generateLink({ type: 'recovery', email, options: { redirectTo: 'https://evil.example/after/js' } })
  check('generateLink redirectTo not on the list falls back to the portal', !r.error
    && r.data.properties.redirect_to.endsWith('/p/acme/') && !r.data.properties.action_link.includes('redirect_to'),
    r.error ?? r.data)
  r = await admin.generateLink({ type: 'magiclink', email: `magic-${run}@example.com` })
  check('generateLink magiclink (signs up)', !r.error && r.data.properties.verification_type === 'signup', r.error ?? r.data)
  r = await admin.generateLink({ type: 'invite', email: `inv2-${run}@example.com`, options: { data: { x: 1 } } })
  check('generateLink invite', !r.error && r.data.properties.action_link.includes('/accept/'), r.error ?? r.data)

  r = await admin.mfa.listFactors({ userId: env.FACTOR_USER })
  check('mfa.listFactors', !r.error && r.data.factors.some(f => f.id === env.FACTOR_ID), r.error ?? r.data)
  r = await admin.mfa.deleteFactor({ userId: env.FACTOR_USER, id: env.FACTOR_ID })
  check('mfa.deleteFactor', !r.error && (r.data.data?.id ?? r.data.id) === env.FACTOR_ID, r.error ?? r.data)
  r = await admin.mfa.deleteFactor({ userId: env.FACTOR_USER, id: env.FACTOR_ID })
  check('mfa.deleteFactor again: not found', isAuthApiError(r.error) && r.error.code === 'mfa_factor_not_found', r.error)

  r = await admin.deleteUser(id, true)
  check('deleteUser soft', !r.error, r.error)
  r = await admin.getUserById(id)
  check('soft-deleted user has deleted_at', !r.error && r.data.user.deleted_at, r.error ?? r.data)
  r = await admin.deleteUser(id)
  check('deleteUser hard', !r.error, r.error)
  r = await admin.getUserById(id)
  check('hard-deleted: user_not_found', isAuthApiError(r.error) && r.error.status === 404 && r.error.code === 'user_not_found', r.error)

  r = await admin.signOut(env.SESSION_TOKEN)
  check('signOut', !r.error, r.error)
  r = await admin.signOut(env.SESSION_TOKEN)
  check('signOut again: session gone', r.error && (r.error.name === 'AuthSessionMissingError' || r.error.status === 403), r.error)

  const viewer = client(env.VIEWER_KEY)
  r = await viewer.createUser({ email: `v-${run}@example.com` })
  check('viewer key refused', isAuthApiError(r.error) && r.error.status === 403 && r.error.code === 'not_admin', r.error)
  r = await viewer.listUsers()
  check('viewer key reads', !r.error && r.data.users.length > 0, r.error)

  r = await client('acsk_wrong-key').listUsers()
  check('wrong key 401', isAuthApiError(r.error) && r.error.status === 401 && r.error.code === 'bad_jwt', r.error)

  r = await admin.oauth.listClients()
  check('oauth feature_disabled', isAuthApiError(r.error) && r.error.status === 404 && r.error.code === 'feature_disabled', r.error)

  // auth-js on its own, with only an Authorization header (its documented setup).
  const gotrue = new GoTrueAdminApi({ url: `${BASE}/auth/v1`, headers: { Authorization: `Bearer ${env.ADMIN_KEY}` } })
  r = await gotrue.createUser({ email: `authjs-${run}@example.com`, email_confirm: true })
  check('auth-js createUser', !r.error && r.data.user.email_confirmed_at, r.error ?? r.data)
  r = await gotrue.listUsers({ page: 1, perPage: 1 })
  check('auth-js listUsers', !r.error && r.data.users.length === 1 && r.data.total >= 1, r.error)
  r = await gotrue.deleteUser(r.data.users[0].id)
  check('auth-js deleteUser (200 {} parsed)', !r.error, r.error)

  // Raw HTTP: a JSON 404, an idempotent replay, the rate limit.
  const headers = { apikey: env.ADMIN_KEY, Authorization: `Bearer ${env.ADMIN_KEY}`, 'Content-Type': 'application/json' }
  let res = await fetch(`${BASE}/auth/v1/nowhere`, { headers })
  check('JSON 404', res.status === 404 && (await res.json()).error_code === 'not_found', res.status)
  const body = JSON.stringify({ email: `idem-${run}@example.com` })
  const first = await fetch(`${BASE}/auth/v1/admin/users`, { method: 'POST', headers: { ...headers, 'Idempotency-Key': run }, body })
  const again = await fetch(`${BASE}/auth/v1/admin/users`, { method: 'POST', headers: { ...headers, 'Idempotency-Key': run }, body })
  const [a, b] = [await first.json(), await again.json()]
  check('idempotent replay', first.status === 200 && again.status === 200 && a.id === b.id && again.headers.get('idempotent-replayed') === 'true', { a, b })

  const limited = client(env.RATE_KEY)
  let hit = null
  for (let i = 0; i < 1100 && !hit; i++) {  // two fixed windows at most: 501 calls land in one
    const x = await limited.listUsers({ page: 1, perPage: 1 })
    if (x.error) hit = x.error
  }
  check('rate limit 429', isAuthApiError(hit) && hit.status === 429 && hit.code === 'over_request_rate_limit', hit)
}

main().catch(e => check('crash', false, String(e?.stack ?? e))).finally(() => {
  for (const r of results) console.log(JSON.stringify(r))
})
