import { Type } from '@sinclair/typebox';

/** A test of one header or query value, as route matches and mirror rules write it. */
export const Predicate = Type.Union([
  Type.String({ description: 'exact value' }),
  Type.Object(
    {
      exact: Type.Optional(Type.String({ description: 'the value must be exactly this' })),
      prefix: Type.Optional(Type.String({ description: 'the value must start with this' })),
      regex: Type.Optional(Type.String({ description: 'a JavaScript regular expression found anywhere in the value (anchor it with ^ and $ for the whole value)' })),
      present: Type.Optional(Type.Boolean({ description: 'true: present with any value; false: must be absent' })),
    },
    { additionalProperties: false, minProperties: 1, maxProperties: 1, description: 'exactly one test of the value' },
  ),
]);
