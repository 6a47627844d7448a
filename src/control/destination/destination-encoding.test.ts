/**
 * The pre-encoded responses of proto/destination.ts that the Destination server fans out: bytes
 * from encodeUpdate/encodeProfile go out unchanged, objects are still encoded, and both decode to
 * the message a client expects.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type DestinationProfile,
  destinationApi,
  encodeProfile,
  encodeUpdate,
  type Update,
} from '../../../proto/destination.js';

const update: Update = {
  update: 'add',
  add: {
    addrs: [
      {
        addr: '10.1.0.1:8080',
        weight: 1,
        identity: 'spiffe://weft.local/ns/default/sa/books',
        protocolHint: 'h2',
        metricLabels: { workload: 'books-1', namespace: 'default', service: 'books' },
      },
    ],
  },
};
const profile: DestinationProfile = {
  opaquePorts: [5432],
  opaque: false,
  fullyQualifiedName: 'books.default.svc.cluster.local',
  routes: [],
};

describe('pre-encoded Destination responses', () => {
  const { Get, GetProfile } = destinationApi().service;

  it('writes bytes from encodeUpdate as they are, and they decode to the Update', () => {
    const bytes = encodeUpdate(update);
    assert.ok(bytes.length > 0);
    assert.equal(Get.responseSerialize(bytes), bytes);
    const decoded = Get.responseDeserialize(bytes) as Update & { add: unknown };
    assert.equal(decoded.update, 'add');
    assert.deepEqual(decoded.add, update.update === 'add' ? update.add : undefined);
  });

  it('still encodes an Update object, to the same bytes', () => {
    assert.deepEqual(Get.responseSerialize(update), encodeUpdate(update));
    const none: Update = { update: 'noEndpoints', noEndpoints: { exists: true } };
    const decoded = Get.responseDeserialize(Get.responseSerialize(none)) as Update;
    assert.equal(decoded.update, 'noEndpoints');
    assert.deepEqual(decoded.update === 'noEndpoints' && decoded.noEndpoints, { exists: true });
  });

  it('does the same for profiles', () => {
    const bytes = encodeProfile(profile);
    assert.equal(GetProfile.responseSerialize(bytes), bytes);
    assert.deepEqual(GetProfile.responseSerialize(profile), bytes);
    assert.deepEqual(GetProfile.responseDeserialize(bytes), profile);
  });
});
