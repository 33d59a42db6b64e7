-- One `hookpipe reconcile` run at a time per source (docs/reconcile.md): a lease that expires,
-- here because Supabase's transaction pooler has no session advisory locks. A run takes it (or
-- finds it held and exits), renews it as it goes, and gives it back when done; a run killed
-- midway leaves it to expire.
create table if not exists hookpipe.reconcile_leases (
    name        text        primary key,   -- e.g. reconcile:leadprosper
    holder      text        not null,      -- the run: host, pid, start time
    acquired_at timestamptz not null default now(),
    expires_at  timestamptz not null
);

alter table hookpipe.reconcile_leases enable row level security;
