-- The reconcile job's Postgres role (infra/terraform/reconcile.tf: its own database URL): it
-- reads what it compares and writes only its own columns and tables, never an event or the
-- worker's columns. A login user for it is made once, out of band (docs/deploy.md):
--   create role hookpipe_reconcile_job login password '…' in role hookpipe_reconcile;
-- Row level security is on for every hookpipe table: the policies let this role see and touch
-- exactly the rows these grants name (all of them; the columns are what is limited).
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'hookpipe_reconcile') then
        create role hookpipe_reconcile nologin;
    end if;
end
$$;

grant usage on schema hookpipe to hookpipe_reconcile;

-- Which event ids landed.
grant select (event_id) on hookpipe.events to hookpipe_reconcile;
drop policy if exists reconcile_reads on hookpipe.events;
create policy reconcile_reads on hookpipe.events
    for select to hookpipe_reconcile using (true);

-- A day's counts, and the API's figures for each lead it lists.
grant select (lead_id, status, campaign_id, lead_date) on hookpipe.leadprosper_leads
    to hookpipe_reconcile;
grant update (cost, revenue, lead_date, returned, checked_at) on hookpipe.leadprosper_leads
    to hookpipe_reconcile;
drop policy if exists reconcile_reads on hookpipe.leadprosper_leads;
create policy reconcile_reads on hookpipe.leadprosper_leads
    for select to hookpipe_reconcile using (true);
drop policy if exists reconcile_records on hookpipe.leadprosper_leads;
create policy reconcile_records on hookpipe.leadprosper_leads
    for update to hookpipe_reconcile using (true) with check (true);

-- Its own lease and checkpoints.
grant select, insert, update, delete on hookpipe.reconcile_leases, hookpipe.reconcile_checkpoints
    to hookpipe_reconcile;
drop policy if exists reconcile_owns on hookpipe.reconcile_leases;
create policy reconcile_owns on hookpipe.reconcile_leases
    for all to hookpipe_reconcile using (true) with check (true);
drop policy if exists reconcile_owns on hookpipe.reconcile_checkpoints;
create policy reconcile_owns on hookpipe.reconcile_checkpoints
    for all to hookpipe_reconcile using (true) with check (true);
