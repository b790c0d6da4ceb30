"""The deployment templates: the package Chalice merges with infra/template.yaml lints clean and
carries everything the app defines; the non-Lambda part deploys to LocalStack and works."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.adapters.aws import aws_client, read_secret_json, read_secret_string
from shared.adapters.objectstore import global_key, open_object_store
from shared.adapters.signing import ArtifactSigner, signing_key_from_secret

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
STACK_LOCAL = ROOT / "infra" / "stack-local.yaml"
pytestmark = pytest.mark.integration

ML_LAYERS = {"ServingLayer", "TrainingLayer"}
STACK_DEADLINE_SECONDS = 45


# ------------------------------------------------------------------------------------ helpers
class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt ...) as their long forms."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_cfn_yaml(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def functions_by_handler(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        resource["Properties"]["Handler"]: (logical_id, resource["Properties"])
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def refs_in(value: Any) -> set[str]:
    """Every logical id (or parameter) a value names with Ref, GetAtt or a ${Name} in Sub."""
    if isinstance(value, dict):
        found: set[str] = set()
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else str(inner).split(".")[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= {m for m in re.findall(r"\$\{([A-Za-z0-9]+)[.}]", text)}
                found |= refs_in(inner[1:]) if isinstance(inner, list) else set()
            else:
                found |= refs_in(inner)
        return found
    if isinstance(value, list):
        return set().union(*(refs_in(item) for item in value)) if value else set()
    return set()


# ------------------------------------------------------------------------ the merged package
@pytest.fixture(scope="module")
def merged_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "out"
    result = subprocess.run(
        [sys.executable, "scripts/package.py", "--stage", "dev", "--out", str(out),
         "--merge-template", str(TEMPLATE)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Chalice writes YAML when the merged template is YAML.
    return out / "sam.yaml"


@pytest.fixture(scope="module")
def merged_template(merged_template_path: Path) -> dict[str, Any]:
    return yaml.safe_load(merged_template_path.read_text())  # Chalice writes the long forms


@pytest.fixture(scope="module")
def chalice_app() -> Any:
    from app import app

    return app


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    # No rule is ignored: the merged package lints clean at cfn-lint's default level (errors and
    # warnings). scripts/deploy.sh runs the same command.
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    return subprocess.run([str(cfn_lint), "--", str(path)], capture_output=True, text=True)


def test_merged_template_passes_cfn_lint(merged_template_path: Path) -> None:
    result = _cfn_lint(merged_template_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_local_stack_template_passes_cfn_lint() -> None:
    result = _cfn_lint(STACK_LOCAL)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_merged_resource_is_complete(merged_template: dict[str, Any]) -> None:
    # A block in infra/template.yaml that adds properties to a Chalice function that no longer
    # exists (a renamed job, say) becomes a resource without a Type.
    resources = merged_template["Resources"]
    stale = sorted(name for name, resource in resources.items() if "Type" not in resource)
    assert stale == [], f"infra/template.yaml names resources Chalice no longer creates: {stale}"


def test_every_route_is_in_the_api(merged_template: dict[str, Any], chalice_app: Any) -> None:
    apis = [
        r for r in merged_template["Resources"].values() if r.get("Type") == "AWS::Serverless::Api"
    ]
    assert len(apis) == 1
    paths = apis[0]["Properties"]["DefinitionBody"]["paths"]
    assert chalice_app.routes, "the app defines no routes"
    missing = []
    for path, methods in chalice_app.routes.items():
        for method, entry in methods.items():
            operation = paths.get(path, {}).get(method.lower())
            if operation is None:
                missing.append(f"{method} {path}")
                continue
            integration = operation["x-amazon-apigateway-integration"]
            assert "${APIHandler.Arn}" in json.dumps(integration["uri"]), f"{method} {path}"
            if entry.authorizer is not None:
                security = operation.get("security", [])
                assert {entry.authorizer.name: []} in security, f"{method} {path}"
    assert missing == []


def test_every_authorizer_schedule_and_queue_handler_is_a_function(
    merged_template: dict[str, Any], chalice_app: Any
) -> None:
    from chalice.app import ScheduledEventConfig, SQSEventConfig

    functions = functions_by_handler(merged_template)
    for authorizer in chalice_app.builtin_auth_handlers:
        assert authorizer.handler_string in functions, authorizer.name

    template_queue_names = [
        r["Properties"]["QueueName"]["Fn::Sub"].replace("${AWS::StackName}-", "")
        for r in merged_template["Resources"].values()
        if r.get("Type") == "AWS::SQS::Queue"
    ]
    assert chalice_app.event_sources, "the app defines no scheduled or queue handlers"
    for source in chalice_app.event_sources:
        assert source.handler_string in functions, f"no function runs {source.handler_string}"
        _, properties = functions[source.handler_string]
        events = list(properties.get("Events", {}).values())
        if isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            if not isinstance(expression, str):
                expression = expression.to_string()
            schedules = [e["Properties"].get("Schedule") for e in events if e["Type"] == "Schedule"]
            assert expression in schedules, source.name
        elif isinstance(source, SQSEventConfig):
            assert [e for e in events if e["Type"] == "SQS"], source.name
            # The queue the handler names is one this stack creates (<stack name>-<queue>, and
            # scripts/deploy.sh names the stack mlstack-<stage>).
            queue = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
            assert any(queue.endswith(name) for name in template_queue_names), (
                queue, template_queue_names
            )
        else:
            assert events, f"{source.name}: no event wired to its function"


def test_functions_get_the_environment_and_at_most_one_ml_layer(
    merged_template: dict[str, Any],
) -> None:
    variables = merged_template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["MLSTACK_OBJECT_STORE_URL"] == {"Fn::Sub": "s3://${ModelBucket}/models"}
    assert variables["MLSTACK_DATABASE_SECRET_ID"] == {"Ref": "DatabaseSecret"}
    assert variables["MLSTACK_SIGNING_KEY_SECRET_ID"] == {"Ref": "SigningKeySecret"}
    assert variables["MLSTACK_STAGE"] == {"Ref": "Stage"}

    resources = merged_template["Resources"]
    for name in ML_LAYERS:
        assert resources[name]["Type"] == "AWS::Serverless::LayerVersion"
        uri = resources[name]["Properties"]["ContentUri"]
        layer = uri.removeprefix("./layers/").removesuffix(".zip")
        # scripts/build_layers.py builds one zip per layers/<name>/ folder.
        assert (ROOT / "layers" / layer / "requirements.txt").is_file(), uri
    for logical_id, properties in functions_by_handler(merged_template).values():
        layers = refs_in(properties.get("Layers", []))
        assert layers <= ML_LAYERS, (logical_id, layers)
        # Both together are over Lambda's 250 MB unzipped cap (layers/README.md).
        assert len(layers) <= 1, f"{logical_id} attaches both ML layers"
        role = FUNCTION_ROLES.get(logical_id, "DefaultRole")
        assert properties["Role"] == {"Fn::GetAtt": [role, "Arn"]}, logical_id


def test_handlers_that_import_numpy_have_an_ml_layer(merged_template: dict[str, Any]) -> None:
    # numpy is not in the function zip: a module that imports it at load time fails in Lambda
    # unless its function attaches a layer. Measured by importing each handler's module.
    modules: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for handler, entry in functions_by_handler(merged_template).items():
        modules.setdefault(handler.rsplit(".", 1)[0], []).append(entry)
    probe = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]);"
        " print(json.dumps('numpy' in sys.modules))"
    )
    for module, entries in modules.items():
        result = subprocess.run(
            [sys.executable, "-c", probe, module], cwd=ROOT, capture_output=True, text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == 0, result.stderr
        if json.loads(result.stdout.strip().splitlines()[-1]):
            bare = [logical_id for logical_id, props in entries if not props.get("Layers")]
            assert bare == [], f"{module} imports numpy; no layer on {bare} (infra/template.yaml)"


ACTIONS_WITHOUT_RESOURCES = {"cloudwatch:GetMetricData"}  # the queues' oldest-message age
# The request path's functions and their own roles (infra/template.yaml).
REQUEST_PATH_ROLES = {"APIHandler": "ApiHandlerRole", "ApiKeyAuthorizer": "ApiKeyAuthorizerRole"}
# The jobs that write to AWS, each with a role of its own (.chalice/config.json names its policy
# file); every other job (it only reads models) has DefaultRole.
JOBS_WITH_OWN_ROLES = ("SelectOcrLabels", "RetrainConflict", "RetrainFraud", "RetrainOcr", "RetrainAnomaly",
                       "TrainWorker", "CollectMetrics", "ScanMetrics", "CheckDrift")
FUNCTION_ROLES = {**REQUEST_PATH_ROLES, **{job: f"{job}Role" for job in JOBS_WITH_OWN_ROLES}}
# Lambda's managed policy for a function's network interfaces in a VPC: the last of every role's
# managed policies, and only in a VPC.
VPC_ACCESS = {"Fn::If": ["InVpc", {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                                               "AWSLambdaVPCAccessExecutionRole"}, {"Ref": "AWS::NoValue"}]}


def role_policies(template: dict[str, Any], role: str) -> dict[str, list[dict[str, Any]]]:
    """A role's policies by name, each a list of statements: its inline policy (at most one) and
    the template's managed policies it attaches (VPC_ACCESS last, which must be there)."""
    properties = template["Resources"][role]["Properties"]
    inline = properties.get("Policies", [])
    assert len(inline) <= 1, [p["PolicyName"] for p in inline]
    policies = {p["PolicyName"]: p["PolicyDocument"]["Statement"] for p in inline}
    *managed, vpc = properties["ManagedPolicyArns"]
    assert vpc == VPC_ACCESS, (role, vpc)
    for arn in managed:
        resource = template["Resources"][arn["Ref"]]
        assert resource.get("Type", "AWS::IAM::ManagedPolicy") == "AWS::IAM::ManagedPolicy", arn
        policies[arn["Ref"]] = resource["Properties"]["PolicyDocument"]["Statement"]
    return policies


def role_grants(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """Each action a role's policies allow, with the logical ids of the resources they name;
    every statement an Allow without wildcard actions, "*" resources only where AWS has no other."""
    granted: dict[str, set[str]] = {}
    for statement in itertools.chain.from_iterable(role_policies(template, role).values()):
        assert statement["Effect"] == "Allow"
        actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
        assert not any("*" in action for action in actions), actions
        # "*" only for actions AWS defines without resource-level permissions, and only alone.
        if "*" in resources:
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCES and resources == ["*"], (actions, resources)
        assert "arn:*:logs:*:*:*" not in resources, resources
        for action in actions:
            granted.setdefault(action, set()).update(refs_in(resources))
    return granted


LOGS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
# What every function but the authorizer may do (ReaderPolicy), and each write a job makes.
READ = {**dict.fromkeys(LOGS, set()), "s3:GetObject": {"ModelBucket"}, "s3:ListBucket": {"ModelBucket"},
        "secretsmanager:GetSecretValue": {"DatabaseSecret", "SigningKeySecret"}}
WRITE_MODELS = {"s3:PutObject": {"ModelBucket"}}
SEND_JOBS = {"sqs:SendMessage": {"TrainingJobsQueue"}}
TAKE_JOBS = dict.fromkeys(("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                           "sqs:GetQueueAttributes"), {"TrainingJobsQueue"})
QUEUE_METRICS = {**dict.fromkeys(("sqs:GetQueueAttributes", "sqs:GetQueueUrl"), {
    "TrainingJobsQueue", "BufferedWritesQueue", "TrainingJobsDeadLetterQueue", "BufferedWritesDeadLetterQueue"}),
    "cloudwatch:GetMetricData": set()}  # "*": no resource to name
ALERTS = {"sns:Publish": {"AlertsTopic"}, "kms:Decrypt": {"AlertsTopicKey"}, "kms:GenerateDataKey": {"AlertsTopicKey"}}


def _grants(*parts: dict[str, set[str]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for part in parts:
        for action, resources in part.items():
            merged.setdefault(action, set()).update(resources)
    return merged


def test_each_job_role_grants_only_what_its_jobs_do(merged_template: dict[str, Any]) -> None:
    """Each job's role allows the reads every function makes and the writes that job makes, no
    more: the retrain schedules send jobs but cannot take them or write an artifact; the worker
    takes jobs and writes artifacts; collection reads queue depths and ages but cannot publish;
    the scan publishes; drift publishes and (its early retrain) writes artifacts and sends a job;
    label selection writes under the labelling prefix alone. No role deletes an artifact or
    touches the buffered-writes queue beyond its depth."""
    expected = {
        "DefaultRole": READ, "SelectOcrLabelsRole": _grants(READ, {"s3:PutObject": {"ModelBucket"}}),
        "RetrainConflictRole": _grants(READ, SEND_JOBS), "RetrainFraudRole": _grants(READ, SEND_JOBS),
        "RetrainOcrRole": _grants(READ, WRITE_MODELS), "RetrainAnomalyRole": _grants(READ, WRITE_MODELS),
        "TrainWorkerRole": _grants(READ, TAKE_JOBS, WRITE_MODELS), "CollectMetricsRole": _grants(READ, QUEUE_METRICS),
        "ScanMetricsRole": _grants(READ, ALERTS), "CheckDriftRole": _grants(READ, ALERTS, WRITE_MODELS, SEND_JOBS),
    }
    assert set(expected) == {"DefaultRole", *(FUNCTION_ROLES[job] for job in JOBS_WITH_OWN_ROLES)}
    for role, grants in expected.items():
        assert role_grants(merged_template, role) == grants, role
        assert merged_template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0][
            "Principal"] == {"Service": "lambda.amazonaws.com"}
    [put] = role_policies(merged_template, "SelectOcrLabelsRole")["WriteLabellingManifestsPolicy"]
    assert put["Resource"] == {"Fn::Sub": "${ModelBucket.Arn}/models/tenants/*/ocr/labelling/*"}


def test_the_request_path_has_read_only_roles_of_its_own(merged_template: dict[str, Any]) -> None:
    """The API's function reads its secrets and the models; the authorizer the database secret.
    Neither can write or delete an artifact, send a job or publish an alert."""
    assert role_grants(merged_template, "ApiHandlerRole") == READ
    assert role_grants(merged_template, "ApiKeyAuthorizerRole") == {
        **dict.fromkeys(LOGS, set()), "secretsmanager:GetSecretValue": {"DatabaseSecret"}}
    for role in REQUEST_PATH_ROLES.values():
        assert merged_template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0][
            "Principal"] == {"Service": "lambda.amazonaws.com"}


def test_local_stack_is_the_non_lambda_part_of_the_template() -> None:
    full, local = load_cfn_yaml(TEMPLATE), load_cfn_yaml(STACK_LOCAL)
    assert "Transform" not in local and "Globals" not in local
    for section in ("Parameters", "Conditions", "Resources"):
        for name, body in local.get(section, {}).items():
            assert full[section].get(name) == body, f"{section}.{name} differs from template.yaml"
    functions = {
        name for name, body in full["Resources"].items()
        if "Type" not in body or body["Type"].startswith(("AWS::Serverless::", "AWS::Lambda::"))
    } | set(FUNCTION_ROLES.values())  # the functions' roles: nothing but a function assumes them
    # ... and the policies attached to those roles alone.
    functions |= {name for name, body in full["Resources"].items() if body.get("Type") == "AWS::IAM::ManagedPolicy"}
    # ... and what refers to a function or layer (the functions' alarms).
    lambda_side = functions | {
        name for name, body in full["Resources"].items()
        if refs_in(body) & (functions | {"APIHandler", "ServingLayer", "TrainingLayer"})
    }
    assert set(full["Resources"]) - lambda_side == set(local["Resources"])
    vpc_placement = {"VpcSubnetIds", "VpcSecurityGroupIds"}
    assert set(full["Parameters"]) - set(local["Parameters"]) == vpc_placement


# ------------------------------------------------------------ the non-Lambda stack, deployed
@pytest.fixture(scope="module")
def deployed(aws_endpoint_url: str) -> Iterator[dict[str, str]]:
    cloudformation = aws_client("cloudformation", endpoint_url=aws_endpoint_url)
    name = f"mlstack-test-{uuid.uuid4().hex[:10]}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=STACK_LOCAL.read_text(),
        Parameters=[
            {"ParameterKey": "Stage", "ParameterValue": "dev"},
            {"ParameterKey": "DatabaseHost", "ParameterValue": "db.mlstack.internal"},
            {"ParameterKey": "DatabasePassword", "ParameterValue": "not-a-real-password-42"},
        ],
    )
    outputs: dict[str, str] = {}
    try:
        deadline = time.monotonic() + STACK_DEADLINE_SECONDS
        while True:
            stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
            if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if stack["StackStatus"] != "CREATE_COMPLETE":
            failures = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
                for e in cloudformation.describe_stack_events(StackName=name)["StackEvents"]
                if e["ResourceStatus"].endswith("FAILED")
            ]
            pytest.fail(f"stack {name} is {stack['StackStatus']}: {failures}")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        yield outputs
    finally:
        cloudformation.delete_stack(StackName=name)
        cloudformation.get_waiter("stack_delete_complete").wait(
            StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": STACK_DEADLINE_SECONDS}
        )
        _remove_retained(aws_endpoint_url, name, outputs)


def _remove_retained(endpoint: str, stack_name: str, outputs: dict[str, str]) -> None:
    """The bucket and the signing key outlive their stack (DeletionPolicy: Retain): remove them."""
    s3 = aws_client("s3", endpoint_url=endpoint)
    bucket = outputs.get("ModelBucketName")
    if bucket:
        listing = s3.list_object_versions(Bucket=bucket)
        for item in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        s3.delete_bucket(Bucket=bucket)
    secrets = aws_client("secretsmanager", endpoint_url=endpoint)
    for secret_id in (outputs.get("SigningKeySecretArn"), f"{stack_name}/signing-key"):
        if secret_id:
            try:
                secrets.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
                break
            except secrets.exceptions.ResourceNotFoundException:
                continue


def test_model_bucket_is_versioned_encrypted_private_and_tls_only(
    deployed: dict[str, str], aws_endpoint_url: str
) -> None:
    s3 = aws_client("s3", endpoint_url=aws_endpoint_url)
    bucket = deployed["ModelBucketName"]
    assert deployed["ObjectStoreUrl"] == f"s3://{bucket}/models"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    denied = [s.get("Condition") for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert {"Bool": {"aws:SecureTransport": "false"}} in denied

    # Through the project's own adapter, as the functions reach it (LocalStack does not enforce
    # bucket policies, so plain HTTP passes here; AWS itself would refuse it).
    store = open_object_store(deployed["ObjectStoreUrl"], s3)
    key = global_key("infra-test", "probe.bin")
    store.put(key, b"first")
    store.put(key, b"second")
    assert store.get(key) == b"second"
    assert store.list("global/infra-test/") == [key]
    versions = s3.list_object_versions(Bucket=bucket, Prefix=f"models/{key}")["Versions"]
    assert len(versions) == 2  # versioning keeps the overwritten artifact


def test_queues_deliver_and_dead_letter(deployed: dict[str, str], aws_endpoint_url: str) -> None:
    sqs = aws_client("sqs", endpoint_url=aws_endpoint_url)
    for queue, dlq, max_receives in (
        ("TrainingJobsQueueUrl", "TrainingJobsDeadLetterQueueUrl", 3),
        ("BufferedWritesQueueUrl", "BufferedWritesDeadLetterQueueUrl", 5),
    ):
        url, dlq_url = deployed[queue], deployed[dlq]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        dlq_attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        dlq_arn = dlq_attributes["Attributes"]["QueueArn"]
        assert redrive["deadLetterTargetArn"] == dlq_arn
        assert int(redrive["maxReceiveCount"]) == max_receives
        assert attributes["SqsManagedSseEnabled"] == "true"

        body = json.dumps({"tenant_id": str(uuid.uuid4()), "kind": "fraud"})
        sqs.send_message(QueueUrl=url, MessageBody=body)
        # A consumer that fails max_receives times (visibility 0: redelivered at once) ...
        for _ in range(max_receives):
            received = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=1)
            assert [m["Body"] for m in received["Messages"]] == [body]
        # ... sends the message to the dead-letter queue on the next receive.
        assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=2)
        assert [m["Body"] for m in dead["Messages"]] == [body]


def test_secrets_hold_the_signing_key_and_the_database_connection(
    deployed: dict[str, str], aws_endpoint_url: str
) -> None:
    secrets = aws_client("secretsmanager", endpoint_url=aws_endpoint_url)
    key = signing_key_from_secret(read_secret_string(secrets, deployed["SigningKeySecretArn"]))
    assert len(key) == 32
    signer = ArtifactSigner(key)
    digest, signature = signer.sign("global/conflict/v1.json", b"{}")
    signer.verify("global/conflict/v1.json", b"{}", digest, signature)

    database = read_secret_json(secrets, deployed["DatabaseSecretArn"])
    assert database == {
        "host": "db.mlstack.internal", "port": 5432, "username": "mlstack",
        "password": "not-a-real-password-42", "dbname": "mlstack",
    }


def test_a_failing_job_function_raises_an_alarm_on_the_alerts_topic(merged_template: dict[str, Any],
                                                                    chalice_app: Any) -> None:
    from chalice.app import ScheduledEventConfig, SQSEventConfig

    resources = merged_template["Resources"]
    alarmed = {
        refs_in(body["Properties"]["Dimensions"]).pop(): body["Properties"] for body in resources.values()
        if body.get("Type") == "AWS::CloudWatch::Alarm" and body["Properties"].get("MetricName") == "Errors"
    }
    functions = functions_by_handler(merged_template)
    for source in chalice_app.event_sources:
        if isinstance(source, ScheduledEventConfig | SQSEventConfig):
            name, _ = functions[source.handler_string]
            assert name in alarmed, f"no errors alarm for {name}"
            assert refs_in(alarmed[name]["AlarmActions"]) == {"AlertsTopic"}
    # The topic is encrypted with a key CloudWatch may use (AWS's managed aws/sns key may not be).
    topic_key = resources["AlertsTopic"]["Properties"]["KmsMasterKeyId"]
    assert refs_in(topic_key) == {"AlertsTopicKey"}
    principals = [st["Principal"] for st in resources["AlertsTopicKey"]["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals


def test_alerts_topic_accepts_messages(deployed: dict[str, str], aws_endpoint_url: str) -> None:
    sns = aws_client("sns", endpoint_url=aws_endpoint_url)
    response = sns.publish(TopicArn=deployed["AlertsTopicArn"], Subject="infra", Message="probe")
    assert response["MessageId"]


def test_api_gateways_own_answers_are_in_the_error_shape_with_a_request_id(merged_template: dict[str, Any]) -> None:
    from functions.gateway_responses import GATEWAY_RESPONSES

    api = merged_template["Resources"]["RestAPI"]["Properties"]
    deployed = api["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    assert set(deployed) == set(GATEWAY_RESPONSES)
    for kind, answer in GATEWAY_RESPONSES.items():
        response = deployed[kind]
        assert response["statusCode"] == answer.status, kind
        body = json.loads(response["responseTemplates"]["application/json"])
        assert body == {"error": {"code": answer.code, "message": answer.message, "fields": []}}, kind
        headers = response["responseParameters"]
        assert headers["gatewayresponse.header.X-Request-Id"] == "context.requestId", kind
        if answer.retry_after is not None:
            assert headers["gatewayresponse.header.Retry-After"] == f"'{answer.retry_after}'", kind
    # The database down during the key check: a 503 a client retries, not API Gateway's 500.
    assert deployed["AUTHORIZER_FAILURE"]["statusCode"] == 503


def test_the_stage_is_throttled(merged_template: dict[str, Any]) -> None:
    settings = merged_template["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    assert [(s["ResourcePath"], s["HttpMethod"]) for s in settings] == [("/*", "*")]
    assert 0 < settings[0]["ThrottlingRateLimit"] <= settings[0]["ThrottlingBurstLimit"]


# S3 operations whose IAM action is not s3:<operation>.
_S3_ACTIONS = {"HeadObject": "s3:GetObject", "HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket",
               "ListObjects": "s3:ListBucket", "GetObjectAttributes": "s3:GetObject"}
_IAM_PREFIXES = {"monitoring": "cloudwatch"}  # CloudWatch's endpoint is monitoring.<region>...


def test_api_requests_make_only_the_aws_calls_the_api_role_grants(
        app_environment: dict[str, str], tenant_keys: dict[str, Any], aws_endpoint_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every AWS call the routes make, recorded in process against LocalStack with a deployed
    function's settings (secrets, queues, alerts topic), is an action the API's role
    (infra/template.yaml) allows, on the resources it names: the read-only role does not break a
    route. The authorizer runs first on a context of its own, as its own Lambda function does, and
    its calls are held to its narrower role (during the routes it shares the API's context)."""
    from datetime import UTC, datetime, timedelta

    from app import app
    from functions.local_gateway import local_test_client
    from shared.context import get_context
    from tests.conftest import auth

    context = get_context()
    now = datetime.now(UTC)
    acme = tenant_keys["acme"]
    trained = _active_conflict_model(context, acme["tenant_id"], now)
    _, (operator, service) = context.tenants.create_tenant_with_keys("platform", "Platform", ("operator", "service"))
    deployed = _deployed_settings(app_environment, aws_endpoint_url, monkeypatch)  # a fresh context reads them
    calls = _recorded_aws_calls(monkeypatch)
    from functions.auth import api_key_authorizer
    from shared.context import reset_context

    allowed = api_key_authorizer({"type": "TOKEN", "authorizationToken": f"Bearer {acme['client']}",
                                  "methodArn": "arn:aws:execute-api:us-east-1:000000000000:abc/api/GET/api/v2/models"}, None)
    assert allowed["principalId"] != "anonymous"
    authorizer_calls = {(action, named) for action, named, _ in calls}
    authorizer_role = role_grants(load_cfn_yaml(TEMPLATE), "ApiKeyAuthorizerRole")
    assert authorizer_calls == {("secretsmanager:GetSecretValue", deployed["database_secret"])}
    assert {action for action, _ in authorizer_calls} <= set(authorizer_role)
    get_context().database.close()
    reset_context()
    calls.clear()
    minute = (now - timedelta(minutes=2)).replace(second=0, microsecond=0).isoformat()
    requests = [
        ("GET", "/health", None, None),
        ("POST", "/api/v2/predict/conflict", acme["client"],
         {"domain": "voice", "user_id": "bob", "entity_type": "recording", "entity_id": "x"}),
        ("GET", "/api/v2/models", acme["staff"], None),
        ("GET", "/api/v2/conflict/dashboard", acme["staff"], None),
        ("POST", "/api/v2/ocr/readings", acme["client"], {"readings": [{
            "client_reading_id": "r-1", "source_type": "meter_reading", "source_id": "meter-1", "ocr_text": "0001234.5",
            "confidence": 0.4, "captured_at": minute, "unit": "kWh", "image_key": "photos/r-1.jpg"}]}),
        ("POST", "/api/v2/metrics", service.secret,
         {"points": [{"source": "app", "metric": "queue_depth", "ts": minute, "value": 3.0}]}),
        ("POST", "/api/v2/monitoring/silences", operator.secret, {"source": "app", "metric": "%", "minutes": 5,
                                                                  "reason": "deploy"}),
        ("GET", "/api/v2/monitoring/dashboard", operator.secret, None),
    ]
    with local_test_client(app) as client:
        for method, path, key, body in requests:
            headers = {**(auth(key) if key else {}), "Content-Type": "application/json"}
            answer = client.http.request(method, path, headers=headers,
                                         body=json.dumps(body).encode() if body is not None else b"")
            assert answer.status_code == 200, (path, answer.body[:500])
            if path == "/api/v2/predict/conflict":
                assert json.loads(answer.body)["model_version"] == trained.label  # loaded from S3
    granted = role_grants(load_cfn_yaml(TEMPLATE), "ApiHandlerRole")
    actions = {action for action, _, _ in calls}
    # The secrets, the artifact and the health check.
    assert {"secretsmanager:GetSecretValue", "s3:GetObject", "s3:ListBucket"} <= actions
    assert actions <= set(granted), sorted(actions - set(granted))
    assert {named for action, named, _ in calls if action.startswith("secretsmanager:")} <= {
        deployed["database_secret"], deployed["signing_secret"]}
    assert {named for action, named, _ in calls if action.startswith("s3:")} == {deployed["bucket"]}


def test_every_job_makes_only_the_aws_calls_its_functions_role_grants(
        app_environment: dict[str, str], tenant_keys: dict[str, Any], aws_endpoint_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scheduled job, and the training worker on the job the conflict retrain queued, run in
    process with a deployed function's settings, each on a context of its own as its Lambda
    function has: every AWS call each makes is an action its function's role (infra/template.yaml)
    allows, on a resource that role names. The data make the calls that need a role's writes
    happen: a trained model to verify, a spike for the scan to publish, a job to queue and train,
    captured readings to select for labelling, queues with dead-letter queues to measure.
    Drift's early retrain (MLSTACK_DRIFT_RETRAIN) is not run here: no drift in these data."""
    from datetime import UTC, datetime, timedelta

    from functions.workers import train_worker
    from shared.context import get_context, reset_context
    from shared.monitoring.intake import MetricBatch, store_metrics
    from shared.monitoring.services import monitoring_services
    from shared.ocr.intake import take_readings
    from shared.ocr.readings import OcrReading
    from shared.ocr.services import ocr_services
    from shared.ocr.settings import change_settings
    from shared.slices import all_jobs

    context = get_context()
    now = datetime.now(UTC)
    acme = tenant_keys["acme"]
    _active_conflict_model(context, acme["tenant_id"], now)
    minute = now.replace(second=0, microsecond=0)
    steady = [{"source": "host-roles", "metric": "latency_ms", "ts": (minute - timedelta(minutes=m)).isoformat(),
               "value": 100.0 + (m * 7) % 5} for m in range(1, 241)]
    spike = [{"source": "host-roles", "metric": "latency_ms", "ts": minute.isoformat(), "value": 900.0}]
    store_metrics(monitoring_services(context), MetricBatch.model_validate({"points": steady + spike}))
    ocr = ocr_services(context)
    change_settings(ocr, acme["tenant_id"], threshold="0")  # every reading captured: a batch to select
    take_readings(ocr, acme["tenant_id"], [OcrReading(
        client_reading_id=f"roles-{n}", source_type="meter_reading", source_id="meter-roles", ocr_text=f"000{n}12.5",
        confidence=0.4, unit="kWh", captured_at=now - timedelta(hours=3 - n)) for n in range(3)], "roles")
    deployed = _deployed_settings(app_environment, aws_endpoint_url, monkeypatch)
    logical_ids = {deployed["database_secret"]: "DatabaseSecret", deployed["signing_secret"]: "SigningKeySecret",
                   deployed["bucket"]: "ModelBucket", deployed["topic"]: "AlertsTopic",
                   **dict.fromkeys(deployed["jobs_queue"], "TrainingJobsQueue"),
                   **dict.fromkeys(deployed["writes_queue"], "BufferedWritesQueue"),
                   **dict.fromkeys(deployed["jobs_dead_letters"], "TrainingJobsDeadLetterQueue"),
                   **dict.fromkeys(deployed["writes_dead_letters"], "BufferedWritesDeadLetterQueue")}
    template = load_cfn_yaml(TEMPLATE)
    calls = _recorded_aws_calls(monkeypatch)

    def held_to_its_role(function: str, run: Any) -> set[str]:
        """Runs a function's work on a fresh context; checks its calls; returns their actions."""
        get_context().database.close()
        reset_context()
        calls.clear()
        run()
        role = FUNCTION_ROLES.get(function, "DefaultRole")
        granted = role_grants(template, role)
        for action, named, key in calls:
            assert action in granted, (function, action)
            # An action granted on "*" (no resource-level permission) names no resource here.
            assert (granted[action] == set() and not named) or logical_ids[named] in granted[action], (
                function, action, named)
            if role == "SelectOcrLabelsRole" and action == "s3:PutObject":  # its one write: a labelling manifest
                assert re.search(r"(^|/)tenants/[^/]+/ocr/labelling/[^/]+$", key), (function, key)
        return {action for action, _, _ in calls}

    made = {}
    for job in all_jobs().values():
        function = "".join(part.title() for part in job.handler_name.split("_"))
        made[function] = held_to_its_role(function, lambda job=job: job.run(get_context()))
    queued = aws_client("sqs", endpoint_url=aws_endpoint_url).receive_message(
        QueueUrl=deployed["jobs_queue"][0], MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    message = next(m for m in queued if json.loads(m["Body"])["kind"] == "conflict")
    made["TrainWorker"] = held_to_its_role(
        "TrainWorker", lambda: train_worker({"Records": [{"body": message["Body"]}]}, None))
    # What each role's writes are for happened, under that role.
    assert "sqs:SendMessage" in made["RetrainConflict"]
    assert "s3:PutObject" in made["TrainWorker"]
    assert {"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "cloudwatch:GetMetricData"} <= made["CollectMetrics"]
    assert "s3:PutObject" in made["SelectOcrLabels"]
    assert "sns:Publish" in made["ScanMetrics"]
    assert "s3:GetObject" in made["VerifyActiveModels"]


def _active_conflict_model(context: Any, tenant_id: str, now: Any) -> Any:
    """A small conflict history for the tenant (20 users, 20 days), a model trained on it and
    made active: the artifact a job or route then fetches from the bucket. Returns its version."""
    from dataclasses import replace

    from shared.conflict.demo_data import DemoConfig, generate_sync_history
    from shared.conflict.training import train_candidate
    from shared.demo import seed_sync_history

    config = replace(DemoConfig(), tenants=("acme",), users_per_tenant=20, entities_per_tenant=80, days=20, end=now)
    seed_sync_history(context, {"acme": tenant_id}, generate_sync_history(config))
    trained = train_candidate(context, end=now)
    assert trained.version is not None
    context.registry.activate(trained.version.version_id, actor="test")
    return trained.version


def _recorded_aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """From now on, every AWS call botocore makes: (the action as IAM names it, the secret,
    bucket, queue or topic it names, the object's key if any)."""
    import botocore.client

    calls: list[tuple[str, str, str]] = []
    real_call = botocore.client.BaseClient._make_api_call

    def recorded(client: Any, operation: str, params: Any) -> Any:
        prefix = _IAM_PREFIXES.get(client.meta.service_model.endpoint_prefix, client.meta.service_model.endpoint_prefix)
        action = _S3_ACTIONS.get(operation, f"s3:{operation}") if prefix == "s3" else f"{prefix}:{operation}"
        named = next((params[k] for k in ("SecretId", "Bucket", "QueueUrl", "QueueName", "TopicArn") if k in params), "")
        calls.append((action, str(named), str(params.get("Key", ""))))
        return real_call(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorded)
    return calls


def _deployed_settings(environment: dict[str, str], endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The settings a deployed function gets (infra/template.yaml's Globals): the database URL and
    signing key from Secrets Manager, the queues and the alerts topic, all made in LocalStack.
    Returns the names of the secrets, the bucket, the queues (with dead-letter queues) and the topic."""
    from urllib.parse import urlparse

    from shared.context import get_context, reset_context

    name = f"mlstack-roles-{uuid.uuid4().hex[:8]}"
    url = urlparse(environment["MLSTACK_DATABASE_URL"])
    secrets_manager = aws_client("secretsmanager", endpoint_url=endpoint)
    secrets_manager.create_secret(Name=f"{name}/db", SecretString=json.dumps({
        "host": url.hostname, "port": url.port, "username": url.username or "postgres", "password": url.password or "x",
        "dbname": url.path.lstrip("/"), "sslmode": "disable"}))
    secrets_manager.create_secret(Name=f"{name}/signing",
                                  SecretString=json.dumps({"signing_key": environment["MLSTACK_SIGNING_KEY"]}))
    sqs = aws_client("sqs", endpoint_url=endpoint)

    def queue_with_dead_letters(queue: str) -> tuple[str, str]:
        dead = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
        return sqs.create_queue(QueueName=queue, Attributes={"RedrivePolicy": redrive})["QueueUrl"], dead

    jobs, jobs_dead = queue_with_dead_letters(f"{name}-jobs")
    writes, writes_dead = queue_with_dead_letters(f"{name}-writes")
    monkeypatch.setenv("MLSTACK_DATABASE_SECRET_ID", f"{name}/db")
    monkeypatch.setenv("MLSTACK_SIGNING_KEY_SECRET_ID", f"{name}/signing")
    monkeypatch.setenv("MLSTACK_TRAINING_JOBS_QUEUE_URL", jobs)
    monkeypatch.setenv("MLSTACK_BUFFERED_WRITES_QUEUE_URL", writes)
    monkeypatch.setenv("MLSTACK_ALERTS_TOPIC_ARN",
                       aws_client("sns", endpoint_url=endpoint).create_topic(Name=f"{name}-alerts")["TopicArn"])
    monkeypatch.delenv("MLSTACK_DATABASE_URL")
    monkeypatch.delenv("MLSTACK_SIGNING_KEY")
    get_context().database.close()
    reset_context()
    return {"database_secret": f"{name}/db", "signing_secret": f"{name}/signing",
            "bucket": urlparse(environment["MLSTACK_OBJECT_STORE_URL"]).netloc,
            # Each queue as a URL and a name (GetQueueUrl names it by name).
            "jobs_queue": [jobs, f"{name}-jobs"], "writes_queue": [writes, f"{name}-writes"],
            "jobs_dead_letters": [jobs_dead, f"{name}-jobs-dlq"], "writes_dead_letters": [writes_dead, f"{name}-writes-dlq"],
            "topic": os.environ["MLSTACK_ALERTS_TOPIC_ARN"]}
