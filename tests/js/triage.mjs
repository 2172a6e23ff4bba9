// What a triage integration written in JavaScript does against escape-fhir, with fhir-kit-client (npm):
// the worklist with referrals and patients in one request, a count, paging, a patient's history, accepting a
// Task with a version-aware update, and a Subscription notification received on a local listener.
// Usage: node triage.mjs BASE_URL NHS_NUMBER; prints one JSON object of what it saw (tests/api/test_clients.py).
import http from 'node:http';
import { Client } from 'fhir-kit-client';

const [baseUrl, nhsNumber] = process.argv.slice(2);
const client = new Client({ baseUrl });
const seen = {};

const worklist = await client.search({
  resourceType: 'Task',
  searchParams: { status: 'requested', _include: ['Task:focus', 'Task:patient'], _count: '50' },
});
seen.worklist = worklist.entry.map((e) => [e.search.mode, e.resource.resourceType]);

seen.count = (await client.search({ resourceType: 'Task', searchParams: { _summary: 'count' } })).total;

let page = await client.search({ resourceType: 'Task', searchParams: { _count: '2', _sort: '_id' } });
seen.paged = [];
while (page) {
  seen.paged.push(...page.entry.map((e) => e.resource.id));
  page = await client.nextPage({ bundle: page });
}

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';
const patients = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${NHS}|${nhsNumber}` } });
const patient = patients.entry[0].resource;
const referrals = await client.search({
  resourceType: 'ServiceRequest',
  searchParams: { patient: `Patient/${patient.id}`, _revinclude: 'Task:focus' },
});
seen.referrals = referrals.entry.map((e) => e.resource.resourceType);
const screening = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${patient.id}` } });
seen.observations = screening.total;
seen.history = (await client.history({ resourceType: 'Patient', id: patient.id })).entry.length;

// A listener for the Subscription's notifications.
const notifications = [];
const listener = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    notifications.push({ method: req.method, url: req.url, header: req.headers['x-triage-key'], body });
    res.writeHead(200).end();
  });
});
await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
const endpoint = `http://127.0.0.1:${listener.address().port}/hook`;
const subscription = await client.create({
  resourceType: 'Subscription',
  body: {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'tell the triage system of accepted referrals',
    criteria: 'Task?status=accepted',
    channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json', header: ['X-Triage-Key: js-client'] },
  },
});
seen.subscriptionStatus = subscription.status;

// Accept the patient's Task: a plain update is refused (428, with the current ETag), a version-aware one works.
const task = referrals.entry.find((e) => e.resource.resourceType === 'Task').resource;
const accepted = { ...task, status: 'accepted' };
try {
  await client.update({ resourceType: 'Task', id: task.id, body: accepted });
  seen.plainUpdate = 'accepted?!';
} catch (error) {
  seen.plainUpdate = error.response.status;
  seen.plainUpdateEtag = error.config.headers.get('etag');
  seen.plainUpdateText = error.response.data.issue[0].diagnostics;
}
const current = await client.read({ resourceType: 'Task', id: task.id });
const updated = await client.update({
  resourceType: 'Task',
  id: task.id,
  body: { ...current, status: 'accepted' },
  options: { headers: { 'If-Match': `W/"${current.meta.versionId}"` } },
});
seen.updated = [updated.status, updated.meta.versionId];

const deadline = Date.now() + 20000;
while (notifications.length === 0 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
seen.notifications = notifications.map((n) => ({
  method: n.method,
  url: n.url,
  header: n.header,
  resource: n.body ? JSON.parse(n.body).resourceType + '/' + JSON.parse(n.body).id : null,
}));
seen.taskId = task.id;
listener.close();
console.log(JSON.stringify(seen));
