// A real, standards-compliant OpenID Connect provider for the single sign-on tests: panva's
// `oidc-provider` (OpenID Certified), with its development login and consent pages. Not a mock of
// Synapse: Synapse runs the whole authorization-code flow against it.
//
//   node provider.mjs <config.json>
// config.json: {"port", "issuer", "client_id", "client_secret", "redirect_uri", "accounts": {login: claims}}
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));

const provider = new Provider(config.issuer, {
  clients: [
    {
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: [config.redirect_uri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  // Pro Santé Connect gives the national id (idNatPS) as `SubjectNameID` in the scope `scope_all`.
  claims: {
    openid: ["sub"],
    profile: ["given_name", "family_name"],
    scope_all: ["SubjectNameID", "given_name", "family_name"],
  },
  scopes: ["openid", "profile", "scope_all"],
  conformIdTokenClaims: false, // userinfo and id_token both carry the scope's claims
  pkce: { required: () => false },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  cookies: { keys: ["azurezo-tests-only"] },
});
provider.proxy = false;

provider.listen(config.port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});
