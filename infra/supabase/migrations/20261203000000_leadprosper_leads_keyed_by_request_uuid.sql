-- LeadProsper's current state is keyed on lp_request_uuid, the lead's id as every Campaign
-- Trigger can send it (support article 72 has no lp_lead_id shortcode: a trigger built from the
-- documented shortcodes gave NULL keys, and current state never moved). Existing rows are
-- re-keyed from the payload of the event each row's state came from; a row whose event names no
-- request uuid cannot be placed and is dropped (its events stay in hookpipe.events), and where
-- two old keys name one request uuid the newest state wins, as the worker's fold would.

delete from hookpipe.leadprosper_leads l
 using hookpipe.events e
 where e.event_id = l.event_id
   and coalesce(e.payload->>'lp_request_uuid', '') = '';

delete from hookpipe.leadprosper_leads l
 where not exists (select 1 from hookpipe.events e where e.event_id = l.event_id);

delete from hookpipe.leadprosper_leads l
 using hookpipe.events e, hookpipe.leadprosper_leads newer, hookpipe.events newer_event
 where e.event_id = l.event_id
   and newer_event.event_id = newer.event_id
   and newer.lead_id <> l.lead_id
   and newer_event.payload->>'lp_request_uuid' = e.payload->>'lp_request_uuid'
   and (newer.event_time, newer.event_id) > (l.event_time, l.event_id);

-- In two steps, so that no two rows share a key half-way (an old key may be another's new one).
update hookpipe.leadprosper_leads set lead_id = E'\x01' || lead_id;
update hookpipe.leadprosper_leads l
   set lead_id = e.payload->>'lp_request_uuid'
  from hookpipe.events e
 where e.event_id = l.event_id;
