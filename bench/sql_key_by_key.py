#!/usr/bin/env python3
"""The SQL endpoint's key-by-key access decision against the whole-bucket case.

Needs a running server whose config has the owner users `alicekey` / `bobkey`
(tests/e2e's TWO_OWNERS_CONFIG) and boto3 (the compat venv has it:
~/.cache/quarry/compat-venv/bin/python). Usage:

    python bench/sql_key_by_key.py http://127.0.0.1:9000 100000

It uploads N one-byte objects (half under shared/) as alice, lets bob list shared/*
by a bucket policy, then times the same inventory query as alice (the bucket whole)
and as bob (each row decided), twice each.
"""
import boto3, sys, time, json, concurrent.futures as cf
from botocore.config import Config
import botocore.auth, botocore.awsrequest, botocore.credentials, urllib.request
ep=sys.argv[1]; n=int(sys.argv[2])
def client(a,s): return boto3.client('s3',endpoint_url=ep,aws_access_key_id=a,aws_secret_access_key=s,region_name='us-east-1',config=Config(max_pool_connections=32))
alice=client('alicekey','alicesecret123')
alice.create_bucket(Bucket='lake')
def put(i): alice.put_object(Bucket='lake',Key=f'shared/k{i:06d}' if i%2==0 else f'private/k{i:06d}',Body=b'x')
with cf.ThreadPoolExecutor(16) as ex: list(ex.map(put, range(n)))
pol={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"bobkey"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::lake","Condition":{"StringLike":{"s3:prefix":"shared/*"}}}]}
alice.put_bucket_policy(Bucket='lake',Policy=json.dumps(pol))
def sql(a,s,q):
    req=botocore.awsrequest.AWSRequest(method='POST',url=ep+'/?sql&format=csv',data=q.encode())
    botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(a,s),'s3','us-east-1').add_auth(req)
    r=urllib.request.urlopen(urllib.request.Request(req.url,data=q.encode(),headers=dict(req.headers),method='POST'))
    return r.read().decode()
q="SELECT count(*) AS n FROM inventory WHERE bucket = 'lake'"
time.sleep(1)
for who,a,s in [('alice (owner, whole bucket)','alicekey','alicesecret123'),('bob (key by key)','bobkey','bobsecret12345')]*2:
    t=time.time(); out=sql(a,s,q); dt=time.time()-t
    print(f"{who}: {out.split()[-1]} rows in {dt*1000:.0f} ms")
