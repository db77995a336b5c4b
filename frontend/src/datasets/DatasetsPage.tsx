export const DatasetsPage = () => <div className="page" />
