// The address policy moved to @ix/contracts/callback-target, so the API can refuse an
// IP-literal callback_url at submit time with the same rule the worker applies at connect time.
export {
  createCallbackTargetPolicy,
  nonPublicRange,
  parseAllowedHosts,
  type CallbackTargetPolicy,
  type ParsedAllowedHosts,
} from "@ix/contracts/callback-target";
