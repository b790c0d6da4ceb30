#!/usr/bin/env bash
# Deploy mlstack to AWS as one CloudFormation stack, mlstack-<stage>:
#
#   1. build the Lambda layers              scripts/build_layers.py (import-tested with --verify)
#   2. package the functions                scripts/package.py --merge-template infra/template.yaml
#      and check function + layer sizes     scripts/build_layers.py --no-build --function-zip
#   3. lint the merged template             cfn-lint
#   4. upload the zips                      aws cloudformation package        (touches AWS)
#   5. create or update the stack           aws cloudformation deploy         (touches AWS)
#      and keep its template for rollback   s3://<artifact bucket>/mlstack/<stage>/releases/
#
#   scripts/deploy.sh --stage dev|prod [--dry-run] [--skip-layer-build] [--artifact-bucket BUCKET]
#
# --dry-run stops after step 3: nothing is sent to AWS, and the commands steps 4-5 would run are
# printed. docs/DEPLOY.md has the whole procedure (first deploy, migrations, rollback, rotation).
#
# Environment (steps 4-5 only; a parameter left unset keeps the stack's current value, so after
# the first deploy only what changes needs setting):
#   MLSTACK_DEPLOY_ARTIFACT_BUCKET   S3 bucket for the uploaded zips (or --artifact-bucket)
#   MLSTACK_DEPLOY_DATABASE_HOST     PostgreSQL (RDS Proxy) endpoint       first deploy: required
#   MLSTACK_DEPLOY_DATABASE_PASSWORD the database user's password          first deploy: required
#   MLSTACK_DEPLOY_DATABASE_PORT / _NAME / _USER   default 5432 / mlstack / mlstack
#   MLSTACK_DEPLOY_ALERT_EMAIL       e-mail subscribed to the alerts topic (optional)
#   MLSTACK_DEPLOY_VPC_SUBNET_IDS, MLSTACK_DEPLOY_VPC_SECURITY_GROUP_IDS
#                                    comma-separated; put the functions in the database's VPC
#   AWS credentials and region as the AWS CLI reads them (AWS_PROFILE, AWS_REGION, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
STAGE=""
DRY_RUN=0
SKIP_LAYER_BUILD=0
ARTIFACT_BUCKET="${MLSTACK_DEPLOY_ARTIFACT_BUCKET:-}"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

die() {
    echo "deploy: error: $*" >&2
    exit 1
}

step() {
    echo
    echo "==> $*"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --stage) [[ $# -ge 2 ]] || die "--stage needs a value (dev or prod)"; STAGE="$2"; shift 2 ;;
        --stage=*) STAGE="${1#*=}"; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --skip-layer-build) SKIP_LAYER_BUILD=1; shift ;;
        --artifact-bucket) [[ $# -ge 2 ]] || die "--artifact-bucket needs a value"; ARTIFACT_BUCKET="$2"; shift 2 ;;
        --artifact-bucket=*) ARTIFACT_BUCKET="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

case "$STAGE" in
    dev|prod) ;;
    "") die "--stage is required: --stage dev or --stage prod" ;;
    *) die "--stage must be dev or prod, not '$STAGE'" ;;
esac
[[ -x "$PY" ]] || die "$PY not found: run scripts/bootstrap.sh first"
[[ -x .venv/bin/cfn-lint ]] || die ".venv/bin/cfn-lint not found: run scripts/bootstrap.sh first"

# Queue names are <stack name>-training-jobs etc., so the stack name is fixed per stage.
STACK_NAME="mlstack-${STAGE}"
OUT="build/deploy/${STAGE}"
LAYERS=(serving training)

step "1/5 Lambda layers (build/layers/)"
if [[ $SKIP_LAYER_BUILD -eq 1 ]]; then
    for layer in "${LAYERS[@]}"; do
        [[ -f "build/layers/${layer}.zip" ]] \
            || die "build/layers/${layer}.zip is missing: run without --skip-layer-build"
    done
    echo "reusing build/layers/{$(IFS=,; echo "${LAYERS[*]}")}.zip"
else
    # --sourceless: deployed layers ship bytecode only (library tracebacks lose their source
    # lines; ours keep them, the function zip has sources). It keeps function + training layer
    # under the 200 MiB goal (measured: 207 MiB with sources, about 181 without).
    "$PY" scripts/build_layers.py --sourceless --verify --verify-runs 1 \
        || die "the layer build or its import test failed (see above)"
fi

step "2/5 chalice package --stage $STAGE, merged with infra/template.yaml -> $OUT/"
"$PY" scripts/package.py --stage "$STAGE" --out "$OUT" --merge-template infra/template.yaml >/dev/null \
    || die "chalice package failed (see above)"
[[ -f "$OUT/sam.yaml" ]] || die "$OUT/sam.yaml was not written"
# The template's layer ContentUri paths are relative to sam.yaml, like Chalice's ./deployment.zip.
mkdir -p "$OUT/layers"
for layer in "${LAYERS[@]}"; do
    cp "build/layers/${layer}.zip" "$OUT/layers/${layer}.zip"
done
echo "$OUT/sam.yaml, $OUT/deployment.zip, $OUT/layers/"
# Function zip + each layer against Lambda's 250 MB unzipped cap (exit 1 over it).
SIZES="$("$PY" scripts/build_layers.py --no-build --function-zip "$OUT/deployment.zip" 2>&1)" \
    || { echo "$SIZES" >&2; die "a function plus its layer is over Lambda's 250 MB unzipped cap, or the size check failed (above)"; }
grep -E '^(what|function)' <<<"$SIZES" || true

step "3/5 cfn-lint $OUT/sam.yaml"
.venv/bin/cfn-lint -- "$OUT/sam.yaml" || die "cfn-lint found problems in the merged template (above)"
echo "clean"

PACKAGED="$OUT/packaged.yaml"
PARAMS=("Stage=$STAGE")
add_param() {  # add_param NAME ENVIRONMENT_VARIABLE
    if [[ -n "${!2:-}" ]]; then PARAMS+=("$1=${!2}"); fi
}
add_param DatabaseHost MLSTACK_DEPLOY_DATABASE_HOST
add_param DatabasePort MLSTACK_DEPLOY_DATABASE_PORT
add_param DatabaseName MLSTACK_DEPLOY_DATABASE_NAME
add_param DatabaseUser MLSTACK_DEPLOY_DATABASE_USER
add_param DatabasePassword MLSTACK_DEPLOY_DATABASE_PASSWORD
add_param AlertEmail MLSTACK_DEPLOY_ALERT_EMAIL
add_param VpcSubnetIds MLSTACK_DEPLOY_VPC_SUBNET_IDS
add_param VpcSecurityGroupIds MLSTACK_DEPLOY_VPC_SECURITY_GROUP_IDS
SHOWN_PARAMS=("${PARAMS[@]/#DatabasePassword=*/DatabasePassword=****}")
BUCKET_SHOWN="${ARTIFACT_BUCKET:-<artifact bucket>}"
PACKAGE_ARGS=(cloudformation package --template-file "$OUT/sam.yaml" --s3-bucket "$BUCKET_SHOWN"
    --s3-prefix "mlstack/$STAGE" --output-template-file "$PACKAGED")
DEPLOY_ARGS=(cloudformation deploy --template-file "$PACKAGED" --stack-name "$STACK_NAME"
    --s3-bucket "$BUCKET_SHOWN" --s3-prefix "mlstack/$STAGE"
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset
    --tags "mlstack:stage=$STAGE")

if [[ $DRY_RUN -eq 1 ]]; then
    step "dry run: stopping before anything touches AWS. Steps 4-5 would run:"
    echo "  aws ${PACKAGE_ARGS[*]}"
    echo "  aws ${DEPLOY_ARGS[*]} --parameter-overrides ${SHOWN_PARAMS[*]}"
    exit 0
fi

# The AWS CLI: the project's venv if it has one, else the one on PATH.
if "$PY" -c "import awscli" >/dev/null 2>&1; then
    AWS=("$PY" -m awscli)
elif command -v aws >/dev/null 2>&1; then
    AWS=(aws)
else
    die "the AWS CLI is needed for steps 4-5: install it (e.g. '$PY -m pip install awscli', or AWS CLI v2) and run again"
fi
[[ -n "$ARTIFACT_BUCKET" ]] \
    || die "no artifact bucket: set MLSTACK_DEPLOY_ARTIFACT_BUCKET or pass --artifact-bucket (an S3 bucket in the target region)"

step "4/5 upload the function and layer zips to s3://$ARTIFACT_BUCKET/mlstack/$STAGE/"
"${AWS[@]}" "${PACKAGE_ARGS[@]}" >/dev/null || die "aws cloudformation package failed (see above)"
echo "$PACKAGED"

step "5/5 deploy stack $STACK_NAME (parameters: ${SHOWN_PARAMS[*]})"
# The parameters (the database password among them) reach the AWS CLI in a file only this user can
# read, not on its command line, where any local user's `ps` would show them. printf is a builtin
# and Python reads them from its standard input, so no argument list ever holds them.
PARAMS_DIR="$(mktemp -d)"  # mode 700
trap 'rm -rf "$PARAMS_DIR"' EXIT
(umask 077 && printf '%s\0' "${PARAMS[@]}" \
    | "$PY" -c 'import json, sys; print(json.dumps(sys.stdin.read().split("\0")[:-1]))' >"$PARAMS_DIR/parameters.json")
"${AWS[@]}" "${DEPLOY_ARGS[@]}" --parameter-overrides "file://$PARAMS_DIR/parameters.json" \
    || die "aws cloudformation deploy failed; CloudFormation rolled the stack back. Events: aws cloudformation describe-stack-events --stack-name $STACK_NAME"

# Keep the packaged template of every release: deploying an older one is the rollback
# (docs/DEPLOY.md). It names its zips by content hash under the same prefix.
RELEASE="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- 2>/dev/null; then RELEASE="${RELEASE}-dirty"; fi
RELEASE_URL="s3://$ARTIFACT_BUCKET/mlstack/$STAGE/releases/$(date -u +%Y%m%dT%H%M%SZ)-$RELEASE.yaml"
"${AWS[@]}" s3 cp "$PACKAGED" "$RELEASE_URL" --only-show-errors \
    || echo "deploy: warning: could not record the release template at $RELEASE_URL" >&2

"${AWS[@]}" cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs" --output table
echo
echo "release template: $RELEASE_URL"
echo "deployed $STACK_NAME. Next (docs/DEPLOY.md): mlstack db migrate against the new database, then tenants and keys."
