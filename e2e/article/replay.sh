#!/usr/bin/env bash
# Replays every curl command of Microsoft's REST article ("Create, run, and delete Azure ML resources using
# REST", 2019-11-01; ../shared/seeds/) against a real `mlhook aml-local`, with the variables filled in, and
# checks each answer's status and shape. Every host of the article (login.microsoftonline.com,
# management.azure.com, the regional API server) is the one local base URL.
#
# Usage: e2e/article/replay.sh [path/to/mlhook]     (default: .build/debug/mlhook)
# Prints one line per command and a closing "N passed, N failed" line; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.build/debug/mlhook}
work=$(mktemp -d /tmp/mlhook-article.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$BIN" aml-local --port 0 --data-dir "$work/data" > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do [ -s "$work/data/credentials.json" ] && break; sleep 0.05; done
[ -s "$work/data/credentials.json" ] || { echo "aml-local did not start:"; cat "$work/server.log"; exit 1; }
cred() { python3 -c "import json,sys; print(json.load(open('$work/data/credentials.json'))['$1'])"; }
BASE=$(cred base_url); TENANT=$(cred tenant_id); CLIENT=$(cred client_id); SECRET=$(cred client_secret)
SUB=$(cred subscription_id); RG=$(cred resource_group); WS=$(cred workspace)
WSPATH="subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.MachineLearningServices/workspaces/$WS"

passed=0; failed=0
# check NAME EXPECTED_STATUS PYTHON_ASSERTION  (the response body is in $work/body, the status in $work/status)
check() {
  local name=$1 want=$2 assertion=$3 got
  got=$(cat "$work/status")
  if [ "$got" = "$want" ] && python3 -c "import json,sys; b=open('$work/body').read(); d=json.loads(b) if b.strip() else {}; assert $assertion" 2>/dev/null; then
    passed=$((passed + 1)); echo "ok   $name ($got)"
  else
    failed=$((failed + 1)); echo "FAIL $name: status $got (want $want), body: $(head -c 300 "$work/body")"
  fi
}
c() { curl -s -o "$work/body" -w '%{http_code}' "$@" > "$work/status"; }

# 1. Get a token (the article's form body, AAD v1).
c -X POST "$BASE/$TENANT/oauth2/token" \
  -d "grant_type=client_credentials&resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=$CLIENT&client_secret=$SECRET"
check "token (v1)" 200 "d['token_type']=='Bearer' and isinstance(d['expires_in'], str) and d['resource']=='https://management.azure.com/'"
TOKEN=$(python3 -c "import json; print(json.load(open('$work/body'))['access_token'])" 2>/dev/null)

# 2. List resource groups.
c "$BASE/subscriptions/$SUB/resourceGroups?api-version=2019-11-01" -H "Authorization:Bearer $TOKEN"
check "list resource groups" 200 "d['value'][0]['name']=='$RG' and d['value'][0]['properties']['provisioningState']=='Succeeded'"

# 3. List workspaces (the article's trailing slash).
c "$BASE/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.MachineLearningServices/workspaces/?api-version=2019-11-01" \
  -H "Authorization:Bearer $TOKEN"
check "list workspaces" 200 "d['value'][0]['name']=='$WS' and d['value'][0]['properties']['discoveryUrl'].endswith('/discovery')"
DISCOVERY=$(python3 -c "import json; print(json.load(open('$work/body'))['value'][0]['properties']['discoveryUrl'])" 2>/dev/null)

# 4. Discovery: the regional API server.
c "$DISCOVERY"
check "discovery" 200 "all(d[k]=='$BASE' for k in ['api','history','modelmanagement','experimentation','studio'])"
API=$(python3 -c "import json; print(json.load(open('$work/body'))['api'])" 2>/dev/null)

# 5. List experiments, 6. list models.
c "$API/history/v1.0/$WSPATH/experiments?api-version=2019-11-01" -H "Authorization:Bearer $TOKEN"
check "list experiments" 200 "isinstance(d['value'], list)"
c "$API/modelmanagement/v1.0/$WSPATH/models?api-version=2019-11-01" -H "Authorization:Bearer $TOKEN"
check "list models" 200 "isinstance(d['value'], list)"

# 7. List computes, 8. create one (the article's body: userAccountCredentials at the top level).
c "$BASE/$WSPATH/computes?api-version=2019-11-01" -H "Authorization:Bearer $TOKEN"
check "list computes" 200 "any(x['name']=='cpu-cluster' for x in d['value'])"
c -X PUT "$BASE/$WSPATH/computes/cpu-compute?api-version=2019-11-01" -H "Authorization:Bearer $TOKEN" -H 'Content-Type: application/json' -d '{
    "location": "eastus",
    "properties": { "computeType": "AmlCompute",
        "properties": { "vmSize": "Standard_D1", "vmPriority": "Dedicated",
            "scaleSettings": { "maxNodeCount": 1, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT30M" } } },
    "userAccountCredentials": { "adminUserName": "azureuser", "adminUserPassword": "Secret-Passw0rd" } }'
check "create compute" 201 "d['properties']['provisioningState']=='Creating' and 'Secret-Passw0rd' not in open('$work/body').read()"

# 9. Start a run: hello.py zipped at the root, the article's run definition (Target: the compute above).
mkdir -p "$work/train"
printf '# hello.py\n# Entry file for run\nprint("Hello, REST!")\n' > "$work/train/hello.py"
(cd "$work/train" && python3 -c "import zipfile; z=zipfile.ZipFile('../train.zip','w'); z.write('hello.py'); z.close()")
cat > "$work/runDefinition.json" <<'JSON'
{
    "Configuration":{
       "Script":"hello.py",
       "Arguments":[ "234" ],
       "SourceDirectoryDataStore":null,
       "Framework":"Python",
       "Communicator":"None",
       "Target":"cpu-compute",
       "MaxRunDurationSeconds":1200,
       "NodeCount":1,
       "Environment":{
          "Python":{ "InterpreterPath":"python", "UserManagedDependencies":false,
             "CondaDependencies":{ "name":"project_environment", "dependencies":[ "python=3.6.2", { "pip":[ "azureml-defaults" ] } ] } },
          "Docker":{ "BaseImage":"mcr.microsoft.com/azureml/base:intelmpi2018.3-ubuntu16.04" }
      },
       "History":{ "OutputCollection":true }
    }
}
JSON
sleep 0.3   # the compute finishes provisioning
c "$API/execution/v1.0/$WSPATH/experiments/my-first-experiment/startrun?api-version=2019-11-01" -X POST \
  -H "Content-Type: multipart/form-data" -H "Authorization:Bearer $TOKEN" \
  -F projectZipFile=@"$work/train.zip" -F runDefinitionFile=@"$work/runDefinition.json"
check "start run" 200 "d['runId'].startswith('my-first-experiment_')"
RUN=$(python3 -c "import json; print(json.load(open('$work/body'))['runId'])" 2>/dev/null)

# 10. Monitor the run until it is terminal.
for _ in $(seq 1 200); do
  c "$API/history/v1.0/$WSPATH/experiments/my-first-experiment/runs/$RUN?api-version=2019-11-01" -H "Authorization:Bearer $TOKEN"
  python3 -c "import json,sys; sys.exit(0 if json.load(open('$work/body')).get('status') in ('Completed','Failed','Canceled') else 1)" 2>/dev/null && break
  sleep 0.1
done
check "get run (to Completed)" 200 "d['runId']=='$RUN' and d['status']=='Completed' and d['target']=='cpu-compute'"

# 11. Delete a model (registered first, since the article deletes one it has).
c -X POST "$API/modelmanagement/v1.0/$WSPATH/models" -H "Authorization:Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"sklearn-mnist","url":"aml://artifact/ExperimentRun/dcid.x/outputs/model.pkl","mimeType":"application/octet-stream"}'
check "register model (setup)" 200 "d['id']=='sklearn-mnist:1'"
c -X DELETE "$API/modelmanagement/v1.0/$WSPATH/models/sklearn-mnist:1?api-version=2019-11-01" -H "Authorization:Bearer $TOKEN"
check "delete model" 200 "True"

# 12. Create a workspace (the article's body, with its missing quote before keyVault restored).
c -X PUT "$BASE/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.MachineLearningServices/workspaces/new-workspace?api-version=2019-11-01" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "{
    \"location\": \"eastus\",
    \"properties\": {
        \"friendlyName\" : \"New workspace\", \"description\" : \"from the article\",
        \"containerRegistry\" : \"/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.ContainerRegistry/registries/reg\",
        \"keyVault\" : \"/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.Keyvault/vaults/kv\",
        \"applicationInsights\" : \"subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.insights/components/ai\",
        \"storageAccount\" : \"/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.Storage/storageAccounts/sa\"
    },
    \"identity\" : { \"type\" : \"systemAssigned\" } }"
check "create workspace (202 + Location)" 202 "d['name']=='new-workspace'"
grep -qi '^location:' <(curl -s -D - -o /dev/null -X PUT "$BASE/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.MachineLearningServices/workspaces/new-workspace?api-version=2019-11-01" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"location":"eastus"}') \
  && { passed=$((passed + 1)); echo "ok   workspace PUT carries a Location header"; } \
  || { failed=$((failed + 1)); echo "FAIL workspace PUT has no Location header"; }

# 13. Score a deployed model: register a local model directory, deploy it, then the article's scoring call.
mkdir -p "$work/model"
printf 'import json\ndef init():\n    pass\ndef run(raw):\n    return [sum(r) for r in json.loads(raw)["data"]]\n' > "$work/model/score.py"
c -X POST "$API/modelmanagement/v1.0/$WSPATH/models" -H "Authorization:Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"name\":\"summer\",\"url\":\"file://$work/model\"}"
c -X PUT "$API/modelmanagement/v1.0/$WSPATH/services/summer" -H "Authorization:Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"modelId":"summer:1"}'
check "deploy model (setup)" 200 "d['state']=='Healthy'"
SCORING=$(python3 -c "import json; print(json.load(open('$work/body'))['scoringUri'])" 2>/dev/null)
c -X POST "$API/modelmanagement/v1.0/$WSPATH/services/summer/listkeys" -H "Authorization:Bearer $TOKEN"
KEY=$(python3 -c "import json; print(json.load(open('$work/body'))['primaryKey'])" 2>/dev/null)
c "$SCORING" -H "Authorization:Bearer $KEY" -H 'Content-Type: application/json' -d '{ "data" : [ [1, 2, 3], [10, 20] ] }'
check "score a deployed model" 200 "d==[6, 30]"

echo "article: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
