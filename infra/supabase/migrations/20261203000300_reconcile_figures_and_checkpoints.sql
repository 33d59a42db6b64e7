-- What only LeadProsper's API knows about a lead (no trigger shortcode carries it), in its
-- current-state row: written by `hookpipe reconcile` alone, for every lead it lists, delivered or
-- backfilled (docs/reconcile.md, "Cost and revenue"). The worker's upsert never names these
-- columns, so a later webhook leaves them as they are. lead_date is also what a day's leads are
-- counted by against GET /stats: indexed.
alter table hookpipe.leadprosper_leads
    add column if not exists cost       numeric,
    add column if not exists revenue    numeric,
    add column if not exists lead_date  timestamptz,
    add column if not exists returned   boolean,
    add column if not exists checked_at timestamptz;  -- when a reconcile last wrote them

create index if not exists leadprosper_leads_lead_date on hookpipe.leadprosper_leads (lead_date);

-- A day (in the source's reconcile time zone) a run finished listing, per campaign ('*': every
-- campaign of the day), through which moment: a killed run, run again, skips what it finished.
create table if not exists hookpipe.reconcile_checkpoints (
    source      text        not null,
    day         date        not null,
    campaign    text        not null,
    through     timestamptz not null,
    finished_at timestamptz not null,
    primary key (source, day, campaign)
);

alter table hookpipe.reconcile_checkpoints enable row level security;
