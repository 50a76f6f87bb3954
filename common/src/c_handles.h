// What the opaque handles of certgate.h hold.
#pragma once

#include <certgate/certgate.h>
#include <certgate/decision.h>
#include <certgate/policy.h>

struct cg_policy {
  certgate::Policy policy;
};

struct cg_decision {
  certgate::Decision decision;
};
