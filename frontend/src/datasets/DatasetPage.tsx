export const DatasetPage = ({ id }: { readonly id: string }) => <div className="page">{id}</div>
